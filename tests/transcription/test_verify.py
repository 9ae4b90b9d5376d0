"""transcription.verify: candidate features on hand-built posteriors, the shipped verifier, the pipeline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from stemscribe.errors import ModelError
from stemscribe.transcription.notes import NoteArrays, to_events
from stemscribe.transcription.pitch_model import Posteriors
from stemscribe.transcription.verify import (
    COMPANION_OFFSETS,
    N_FEATURES,
    N_SCALARS,
    PARTIAL_OFFSETS,
    ROLES,
    THRESHOLD_SCALE,
    NoteVerifier,
    _agrees,
    default_weights_path,
    note_features,
)

N_FRAMES = 200
# Columns of the scalars, in the order `note_features` stacks them. The shipped weights were trained on
# this order (FEATURE_VERSION 1): a change that is not a version bump breaks them.
ONSET_PEAK, ONSET_BELOW, ONSET_ABOVE, ONSET_OCT_BELOW, ONSET_OCT_ABOVE, ONSET_EARLIER, ONSET_ANY = range(7)
FRAME_MEAN, FRAME_HEAD, FRAME_BEFORE, FRAME_AFTER, FRAME_PEAK = range(7, 12)
LENGTH, PITCH, LOUD, SWELL, LOUD_MAX, CHORD, VELOCITY, AGREES = range(12, 20)
ROLE_COLUMNS = slice(N_FEATURES - len(ROLES), N_FEATURES)


def _partial(offset: int) -> int:
    return N_SCALARS + PARTIAL_OFFSETS.tolist().index(offset)


def _companion(offset: int) -> int:
    return N_SCALARS + len(PARTIAL_OFFSETS) + COMPANION_OFFSETS.tolist().index(offset)


def _post(n_frames: int = N_FRAMES) -> Posteriors:
    return Posteriors(
        np.zeros((n_frames, 88), np.float32),
        np.zeros((n_frames, 88), np.float32),
        np.zeros((n_frames, 264), np.float32),
    )


def _notes(*rows: tuple[int, int, int]) -> NoteArrays:
    """NoteArrays from (start frame, end frame, MIDI pitch) rows, velocity 0.8."""
    if not rows:
        return NoteArrays.empty()
    start, end, pitch = (np.array(col, np.int64) for col in zip(*rows, strict=True))
    return NoteArrays(start, end, pitch, np.full(len(rows), 0.8, np.float32))


def _loud(n_frames: int = N_FRAMES) -> np.ndarray:
    return np.zeros(n_frames, np.float32)


def test_feature_layout() -> None:
    assert N_FEATURES == N_SCALARS + len(PARTIAL_OFFSETS) + len(COMPANION_OFFSETS) + len(ROLES)
    assert AGREES == N_SCALARS - 1
    assert len(set(ROLES)) == len(ROLES) and "mix" in ROLES
    assert set(THRESHOLD_SCALE) == set(ROLES)
    assert all(0 < s <= 1 for s in THRESHOLD_SCALE.values())


def test_scalars_read_the_posteriors_around_the_note() -> None:
    post = _post()
    b = 60 - 21
    start, end = 50, 70
    post.onset[start - 2, b] = 0.3  # inside the +-2 frame window
    post.onset[start + 2, b] = 0.7  # the window's peak
    post.onset[start + 3, b] = 0.95  # just outside it
    post.onset[start - 3, b] = 0.9  # outside it, but "an earlier onset" (-10..-3)
    post.onset[start, b - 1] = 0.2
    post.onset[start, b + 1] = 0.4
    post.onset[start + 1, b + 12] = 0.6
    post.note[start:end, b] = 0.8
    post.note[end : end + 2, b] = 0.4  # a tail of 2 frames: mean 0.2 over the 4 frames after the end
    post.note[start - 5, b] = 1.0  # 5 frames before: outside the "already sounding" window
    post.note[start - 4, b] = 0.4  # inside it: mean 0.1 over its 4 frames
    partials = {12: 0.3, 19: 0.35, 24: 0.4, 28: 0.45, -12: 0.5, -19: 0.55, -24: 0.6}  # and sub-partials
    for o, level in partials.items():
        post.note[start:end, b + o] = level
    loud = _loud()
    loud[start - 3], loud[start], loud[start + 3], loud[100] = 0.2, 0.6, 0.7, 0.9
    notes = NoteArrays(
        np.array([start], np.int64),
        np.array([end], np.int64),
        np.array([60], np.int64),
        np.array([0.65], np.float32),
    )

    feats = note_features(post, loud, notes, NoteArrays.empty(), "piano")

    assert feats.shape == (1, N_FEATURES) and feats.dtype == np.float32 and np.isfinite(feats).all()
    f = feats[0]
    assert f[ONSET_PEAK] == pytest.approx(0.7)
    assert f[ONSET_BELOW] == pytest.approx(0.2) and f[ONSET_ABOVE] == pytest.approx(0.4)
    assert f[ONSET_OCT_BELOW] == 0.0 and f[ONSET_OCT_ABOVE] == pytest.approx(0.6)
    assert f[ONSET_EARLIER] == pytest.approx(0.9)
    assert f[ONSET_ANY] == pytest.approx(0.4)  # the strongest onset in the start frame, any pitch
    assert f[FRAME_MEAN] == pytest.approx(0.8) and f[FRAME_HEAD] == pytest.approx(0.8)
    assert f[FRAME_BEFORE] == pytest.approx(0.1) and f[FRAME_AFTER] == pytest.approx(0.2)
    assert f[FRAME_PEAK] == pytest.approx(0.8)
    assert f[LENGTH] == pytest.approx(np.log1p(end - start) / 6.0)
    assert f[PITCH] == pytest.approx(b / 87)
    assert f[LOUD] == pytest.approx(0.6) and f[LOUD_MAX] == pytest.approx(0.9)
    assert f[SWELL] == pytest.approx(0.5)  # loudness 3 frames after the start minus 3 frames before
    assert f[CHORD] == 0.0 and f[VELOCITY] == pytest.approx(0.65) and f[AGREES] == 0.0
    assert sorted(partials) == sorted(PARTIAL_OFFSETS.tolist())
    assert [f[_partial(o)] for o in partials] == pytest.approx(list(partials.values()))
    assert not f[_companion(-24) : _companion(19) + 1].any()


def test_onset_peak_only_at_the_notes_pitch_and_window() -> None:
    post = _post()
    post.onset[40, 39] = 0.9  # 10 frames early: outside +-2
    post.onset[50, 40] = 0.9  # right frame, a semitone up
    post.onset[51, 39] = 0.35
    notes = _notes((50, 60, 60), (49, 60, 60), (53, 60, 60), (48, 60, 60), (54, 60, 60))
    feats = note_features(post, _loud(), notes, NoteArrays.empty(), "vocals")
    # Starts 49, 50 and 53 are within 2 frames of frame 51; 48 and 54 are 3 frames away.
    assert feats[:, ONSET_PEAK] == pytest.approx([0.35, 0.35, 0.35, 0.0, 0.0])


def test_role_one_hot_and_unknown_role() -> None:
    post, notes = _post(), _notes((10, 20, 60), (30, 40, 64))
    for i, role in enumerate(ROLES):
        feats = note_features(post, _loud(), notes, NoteArrays.empty(), role)
        expected = np.zeros(len(ROLES), np.float32)
        expected[i] = 1.0
        assert (feats[:, ROLE_COLUMNS] == expected).all(), role
    for role in ("drums", "auto", "Piano", ""):
        with pytest.raises(ValueError, match="unknown role"):
            note_features(post, _loud(), notes, NoteArrays.empty(), role)
    with pytest.raises(ValueError, match="unknown role"):  # even without notes
        note_features(post, _loud(), NoteArrays.empty(), NoteArrays.empty(), "drums")


def test_no_notes() -> None:
    feats = note_features(_post(), _loud(), NoteArrays.empty(), _notes((10, 20, 60)), "mix")
    assert feats.shape == (0, N_FEATURES) and feats.dtype == np.float32


def test_agreement_with_the_reference() -> None:
    notes = _notes(
        (50, 60, 60),  # reference 60 starts 2 frames later: agrees
        (100, 110, 60),  # reference 60 starts 3 frames later: does not
        (150, 160, 62),  # reference at the same start, a semitone lower: does not
        (20, 30, 70),  # reference 70 starts 2 frames earlier: agrees
        (180, 190, 40),  # reference at the same frame and pitch: agrees
    )
    reference = _notes((52, 58, 60), (103, 110, 60), (150, 160, 61), (18, 25, 70), (180, 185, 40))
    expected = [True, False, False, True, True]
    assert _agrees(notes, reference).tolist() == expected
    feats = note_features(_post(), _loud(), notes, reference, "guitar")
    assert feats[:, AGREES].tolist() == [float(e) for e in expected]
    assert not note_features(_post(), _loud(), notes, NoteArrays.empty(), "guitar")[:, AGREES].any()
    assert _agrees(NoteArrays.empty(), reference).shape == (0,)
    # A candidate agrees with itself: the strict decode is always among the loose one's candidates.
    assert _agrees(reference, reference).all()


def test_chord_size_counts_candidates_starting_within_two_frames() -> None:
    notes = _notes(
        (50, 60, 60),
        (52, 60, 64),  # 2 frames after the first
        (53, 60, 67),  # 3 frames after the first, 1 after the second
        (120, 130, 60),  # alone
    )
    feats = note_features(_post(), _loud(), notes, NoteArrays.empty(), "piano")
    assert feats[:, CHORD] == pytest.approx([1 / 8, 2 / 8, 1 / 8, 0.0])
    cluster = _notes(*[(80, 90, 50 + k) for k in range(12)])  # 11 others each: capped at 8
    assert (note_features(_post(), _loud(), cluster, NoteArrays.empty(), "piano")[:, CHORD] == 1.0).all()


def test_octave_and_twelfth_companions() -> None:
    notes = _notes(
        (50, 60, 60),
        (51, 60, 72),  # an octave above, a frame later
        (100, 110, 48),
        (100, 110, 67),  # a twelfth above 48
        (150, 160, 60),
        (154, 160, 72),  # an octave above, but 4 frames later: no companion
        (180, 190, 100),  # +12 would be MIDI 112, above the model's range
        (180, 190, 21),  # the lowest key: -12, -19, -24 are below the range
    )
    feats = note_features(_post(), _loud(), notes, NoteArrays.empty(), "piano")
    flags = {o: feats[:, _companion(o)].astype(bool).tolist() for o in COMPANION_OFFSETS.tolist()}
    assert flags[12] == [True, False, False, False, False, False, False, False]
    assert flags[-12] == [False, True, False, False, False, False, False, False]
    assert flags[19] == [False, False, True, False, False, False, False, False]
    assert flags[-19] == [False, False, False, True, False, False, False, False]
    assert flags[-24] == [False] * 8
    # MIDI 100 and 21 start together 79 semitones apart: neither is the other's companion.
    assert not feats[6:, _companion(-24) : _companion(19) + 1].any()


def test_notes_at_the_edges_do_not_crash() -> None:
    post = _post()
    rng = np.random.default_rng(0)
    post.note[:] = rng.random(post.note.shape, dtype=np.float32)
    post.onset[:] = rng.random(post.onset.shape, dtype=np.float32)
    notes = _notes(
        (0, 10, 21),
        (0, N_FRAMES, 108),
        (N_FRAMES - 1, N_FRAMES, 21),
        (N_FRAMES - 1, N_FRAMES, 108),
        (N_FRAMES - 3, N_FRAMES + 5, 60),  # ends past the posteriors
        (5, 5, 60),  # no length
        (2, 12, 33),  # partials below and companions at -24 reach under MIDI 21
    )
    loud = rng.random(N_FRAMES, dtype=np.float32)
    for role in ROLES:
        feats = note_features(post, loud, notes, notes, role)
        assert feats.shape == (len(notes), N_FEATURES) and feats.dtype == np.float32
        assert np.isfinite(feats).all()
    assert feats[0, ONSET_BELOW] == 0.0 and feats[0, ONSET_OCT_BELOW] == 0.0  # below MIDI 21
    assert feats[1, ONSET_ABOVE] == 0.0 and feats[1, ONSET_OCT_ABOVE] == 0.0  # above MIDI 108
    assert feats[0, _partial(-12)] == 0.0 and feats[1, _partial(12)] == 0.0
    assert feats[1, FRAME_AFTER] == 0.0  # nothing after the last frame
    assert feats[0, PITCH] == 0.0 and feats[1, PITCH] == pytest.approx(1.0)
    assert feats[1, LENGTH] == pytest.approx(np.log1p(N_FRAMES) / 6.0)
    assert feats[5, LENGTH] == pytest.approx(np.log1p(1) / 6.0)  # a note lasts at least a frame
    # Loudness of another length (the caller's rounding) is stretched, not an error.
    short = note_features(post, loud[:-7], notes, notes, "mix")
    assert short.shape == (len(notes), N_FEATURES) and np.isfinite(short).all()


needs_weights = pytest.mark.skipif(
    not NoteVerifier.available(), reason="stemscribe/weights/verify.onnx absent"
)


def _shipped_metadata() -> dict[str, str]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(default_weights_path()), providers=["CPUExecutionProvider"])
    (features,) = session.get_inputs()
    assert features.name == "features" and features.shape[1] == N_FEATURES
    return dict(session.get_modelmeta().custom_metadata_map)


@pytest.fixture(scope="module")
def verifier() -> NoteVerifier:
    if not NoteVerifier.available():
        pytest.skip("stemscribe/weights/verify.onnx absent")
    return NoteVerifier()


def _clear_and_ghost() -> tuple[Posteriors, np.ndarray, NoteArrays, NoteArrays]:
    """A clear held note (onset, strong frame posterior, in the reference) and a faint ghost at a
    semitone above it (no onset, weak posterior, not in the reference), twice over."""
    post = _post()
    loud = np.full(N_FRAMES, 0.2, np.float32)
    for start in (30, 120):
        post.onset[start, 60 - 21] = 0.95
        post.note[start : start + 40, 60 - 21] = 0.9
        post.note[start + 10 : start + 20, 61 - 21] = 0.16
        loud[start : start + 40] = 0.8
    candidates = _notes((30, 70, 60), (40, 50, 61), (120, 160, 60), (130, 140, 61))
    reference = _notes((30, 70, 60), (120, 160, 60))
    return post, loud, candidates, reference


@needs_weights
def test_shipped_verifier_thresholds(verifier: NoteVerifier) -> None:
    meta = _shipped_metadata()
    assert meta["feature_version"] == "1" and json.loads(meta["roles"]) == list(ROLES)
    assert meta["n_features"] == str(N_FEATURES)
    validated = json.loads(meta["thresholds"])
    assert verifier.thresholds == validated
    for role in ROLES:
        assert role in validated, role
        assert verifier.threshold(role) == pytest.approx(THRESHOLD_SCALE[role] * validated[role])
        assert 0.0 < verifier.threshold(role) < 1.0


@needs_weights
def test_shipped_verifier_keeps_a_subset(verifier: NoteVerifier) -> None:
    post, loud, candidates, reference = _clear_and_ghost()
    for role in ROLES:
        probs = verifier.probabilities(post, loud, candidates, reference, role)
        assert probs.shape == (len(candidates),) and probs.dtype == np.float32
        assert ((probs >= 0.0) & (probs <= 1.0)).all()
        kept = verifier.keep(post, loud, candidates, reference, role)
        chosen = probs >= verifier.threshold(role)
        got = set(zip(kept.start.tolist(), kept.end.tolist(), kept.pitch.tolist(), strict=True))
        given = list(
            zip(candidates.start.tolist(), candidates.end.tolist(), candidates.pitch.tolist(), strict=True)
        )
        assert got <= set(given), role
        assert got == {n for n, c in zip(given, chosen, strict=True) if c}, role
        assert np.array_equal(kept.velocity, candidates.velocity[chosen])
    # The clear notes are kept and the ghosts dropped, whatever the role.
    for role in ROLES:
        kept = verifier.keep(post, loud, candidates, reference, role)
        assert kept.pitch.tolist() == [60, 60] and kept.start.tolist() == [30, 120], role
    empty = NoteArrays.empty()
    assert len(verifier.keep(post, loud, empty, reference, "bass")) == 0
    assert verifier.probabilities(post, loud, empty, reference, "bass").shape == (0,)


@needs_weights
def test_damaged_or_missing_weights(tmp_path: Path, verifier: NoteVerifier) -> None:
    assert NoteVerifier.available()
    assert not NoteVerifier.available(tmp_path / "nope.onnx")
    with pytest.raises(ModelError, match="not found"):
        NoteVerifier(tmp_path / "nope.onnx")

    good = tmp_path / "good.onnx"
    shutil.copyfile(verifier.path, good)
    shutil.copyfile(verifier.path.with_name(verifier.path.name + ".sha256"), tmp_path / "good.onnx.sha256")
    assert NoteVerifier(good).thresholds == verifier.thresholds  # a faithful copy loads

    damaged = tmp_path / "damaged.onnx"
    data = bytearray(verifier.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    shutil.copyfile(verifier.path.with_name(verifier.path.name + ".sha256"), tmp_path / "damaged.onnx.sha256")
    with pytest.raises(ModelError, match="damaged"):
        NoteVerifier(damaged)

    no_sum = tmp_path / "nosum.onnx"
    shutil.copyfile(verifier.path, no_sum)
    with pytest.raises(ModelError, match="checksum"):
        NoteVerifier(no_sum)


@needs_weights
def test_weights_for_other_features_are_refused(tmp_path: Path, verifier: NoteVerifier) -> None:
    onnx = pytest.importorskip("onnx")
    from stemscribe.transcription.weights import write_weights

    def relabelled(name: str, **changes: str) -> Path:
        model = onnx.load(str(verifier.path))
        for entry in model.metadata_props:
            if entry.key in changes:
                entry.value = changes[entry.key]
        path = tmp_path / name
        write_weights(path, model.SerializeToString())
        return path

    assert NoteVerifier(relabelled("same.onnx")).thresholds == verifier.thresholds
    with pytest.raises(ModelError, match="other features"):
        NoteVerifier(relabelled("old.onnx", feature_version="0"))
    with pytest.raises(ModelError, match="other features"):
        NoteVerifier(relabelled("roles.onnx", roles=json.dumps(list(ROLES[:-1]))))
    with pytest.raises(ModelError, match="thresholds"):
        NoteVerifier(relabelled("thresholds.onnx", thresholds="not json"))


# -- the pipeline -------------------------------------------------------------------------------------

MELODY = [(60, 0.3, 0.8), (64, 0.8, 1.3), (67, 1.3, 1.8), (72, 1.8, 2.5)]


@pytest.fixture(scope="module")
def plain():  # type: ignore[no-untyped-def]
    from stemscribe import Transcriber

    return Transcriber(verify=False, drums="dsp", engine="basic-pitch")


@pytest.fixture(scope="module")
def verified():  # type: ignore[no-untyped-def]
    from stemscribe import Transcriber

    return Transcriber(verify=True, drums="dsp", engine="basic-pitch")


def _melody_with_pad(signals) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The melody over a soft held C3 + G3: the C3's octave partial gives a ghost C4 candidate."""
    x = signals.melody(MELODY, 3.0)
    x = x + signals.tone(48, 0.3, 2.5, total=3.0, amp=0.1) + signals.tone(55, 0.3, 2.5, total=3.0, amp=0.05)
    return x.astype(np.float32)


def test_verify_false_has_no_verifier(plain) -> None:  # type: ignore[no-untyped-def]
    assert plain.verifier is None


@pytest.mark.parametrize("stem", ["vocals", "piano"])
def test_melody_with_and_without_the_verifier(plain, verified, signals, stem: str) -> None:  # type: ignore[no-untyped-def]
    x = signals.melody(MELODY, 3.0)
    for transcriber in (plain, verified):
        result = transcriber.transcribe((x, signals.sr), stem=stem)
        (inst,) = result.instruments
        assert [n.pitch for n in inst.notes] == [p for p, _, _ in MELODY], transcriber.verify
        for note, (_, start, _) in zip(inst.notes, MELODY, strict=True):
            assert abs(note.start - start) < 0.07, (transcriber.verify, note)


@needs_weights
@pytest.mark.parametrize("stem", ["vocals", "piano"])
def test_verifier_keeps_a_subset_of_the_relaxed_candidates(
    verified, signals, monkeypatch: pytest.MonkeyPatch, stem: str
) -> None:  # type: ignore[no-untyped-def]
    from stemscribe.stems import StemType
    from stemscribe.transcription.decoding import CANDIDATE_RELAX, stem_notes

    assert isinstance(verified.verifier, NoteVerifier)
    x = _melody_with_pad(signals)
    calls = []
    keep = verified.verifier.keep

    def spy(post, loud, notes, reference, role):  # type: ignore[no-untyped-def]
        kept = keep(post, loud, notes, reference, role)
        calls.append((notes, reference, role, kept))
        return kept

    monkeypatch.setattr(verified.verifier, "keep", spy)
    result = verified.transcribe((x, signals.sr), stem=stem)
    ((candidates, reference, role, kept),) = calls
    assert role == stem

    post, loud = verified._pitched(x)
    expected = stem_notes(post, loud, StemType(stem), relax=CANDIDATE_RELAX)
    strict = stem_notes(post, loud, StemType(stem))
    for got, want in ((candidates, expected), (reference, strict)):
        assert np.array_equal(got.start, want.start) and np.array_equal(got.pitch, want.pitch)
    assert len(candidates) >= len(strict)

    def keys(notes: NoteArrays) -> set[tuple[int, int, int]]:
        return set(zip(notes.start.tolist(), notes.end.tolist(), notes.pitch.tolist(), strict=True))

    assert keys(kept) <= keys(candidates)
    assert len(kept) < len(candidates)  # the ghost C4 (C3's octave partial) is dropped
    events = [(n.pitch, round(n.start, 6)) for n in to_events(kept)]
    (inst,) = result.instruments
    assert [(n.pitch, round(n.start, 6)) for n in inst.notes] == events


@needs_weights
def test_mix_goes_through_the_verifier(verified, signals, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    roles = []
    keep = verified.verifier.keep

    def spy(post, loud, notes, reference, role):  # type: ignore[no-untyped-def]
        kept = keep(post, loud, notes, reference, role)
        roles.append(role)
        assert len(kept) <= len(notes)
        return kept

    monkeypatch.setattr(verified.verifier, "keep", spy)
    result = verified.transcribe((signals.melody(MELODY, 3.0), signals.sr), stem="mix")
    assert roles == ["mix"]
    pitched = {n.pitch for inst in result.instruments if not inst.is_drum for n in inst.notes}
    assert {p for p, _, _ in MELODY} <= pitched
