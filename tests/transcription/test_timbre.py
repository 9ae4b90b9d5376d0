"""stemscribe.transcription.timbre: note features, weight checks, and the shipped family classifier."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stemscribe.errors import ModelError
from stemscribe.result import NoteEvent
from stemscribe.stems import Family
from stemscribe.transcription.timbre import (
    FEATURE_VERSION,
    FRAME_OFFSETS,
    N_FEATURES,
    PARTIALS,
    SAMPLE_RATE,
    TIMBRE_FAMILIES,
    FamilyClassifier,
    note_features,
)

N_HARM = len(FRAME_OFFSETS) * len(PARTIALS)


def _tone(pitch: int, seconds: float, harmonics: int, start: float = 0.0, total: float = 2.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    tone = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, harmonics + 1))
    out = np.zeros(int(total * SAMPLE_RATE), np.float32)
    i = int(start * SAMPLE_RATE)
    out[i : i + len(t)] = 0.3 * tone[: len(out) - i]
    return out


def _harmonics(feats: np.ndarray) -> np.ndarray:
    """(n, frames, partials) normalised partial levels of a feature matrix."""
    return feats[:, :N_HARM].reshape(len(feats), len(FRAME_OFFSETS), len(PARTIALS))


def test_families_are_the_pitched_ones() -> None:
    assert set(TIMBRE_FAMILIES) == set(Family) - {Family.DRUMS}
    assert len(TIMBRE_FAMILIES) == len(set(TIMBRE_FAMILIES))


def test_sine_and_sawtooth_partials() -> None:
    sine = note_features(_tone(57, 1.0, 1, start=0.5), [57], [0.5], [1.5])
    saw = note_features(_tone(57, 1.0, 12, start=0.5), [57], [0.5], [1.5])
    assert sine.shape == saw.shape == (1, N_FEATURES)
    held = FRAME_OFFSETS.tolist().index(5)
    h_sine, h_saw = _harmonics(sine)[0, held], _harmonics(saw)[0, held]
    assert h_sine[0] == pytest.approx(0.0, abs=0.05)  # the fundamental sets the reference level
    assert (h_sine[1:8] < -5).all()  # a sine has no upper partials
    # A sawtooth's k-th harmonic is 1/k of the fundamental: log level -ln(k), within the window's blur.
    k = np.arange(2, 9)
    assert np.allclose(h_saw[1:8], -np.log(k), atol=0.4)
    # The frame just before the onset only catches the attack in its window's tail.
    assert (_harmonics(saw)[0, 0, :4] < h_saw[:4] - 3).all()


def test_edges_and_empty_input() -> None:
    x = _tone(45, 1.0, 6, start=0.0, total=1.0)
    feats = note_features(x, [45, 45, 100], [0.0, 0.95, 0.2], [1.0, 1.0, 0.4])  # at both ends, very high
    assert feats.shape == (3, N_FEATURES)
    assert np.isfinite(feats).all()
    assert note_features(x, [], [], []).shape == (0, N_FEATURES)
    with pytest.raises(ValueError):
        note_features(np.zeros((2, 100), np.float32), [60], [0.0], [0.1])
    with pytest.raises(ValueError):
        note_features(x, [60, 61], [0.0], [0.1])


def _tiny_model(path: Path, *, families: list[str] | None = None, n_features: int = N_FEATURES) -> None:
    """A random-weight linear + softmax ONNX model with the metadata the classifier checks."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array((rng.standard_normal((n_features, 9)) * 0.1).astype(np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["features", "w"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
        ],
        "tiny",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["n", n_features])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["n", 9])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {
        "families": json.dumps(families or [f.value for f in TIMBRE_FAMILIES]),
        "feature_version": str(FEATURE_VERSION),
        "n_features": str(n_features),
    }
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    path.write_bytes(model.SerializeToString())
    import hashlib

    path.with_name(path.name + ".sha256").write_text(hashlib.sha256(path.read_bytes()).hexdigest() + "\n")


def test_classify_with_a_tiny_model(tmp_path: Path) -> None:
    weights = tmp_path / "timbre.onnx"
    _tiny_model(weights)
    assert FamilyClassifier.available(weights)
    clf = FamilyClassifier(weights)
    x = _tone(50, 1.0, 8, start=0.3)
    notes = [NoteEvent(50, 0.3, 1.3, 0.8), NoteEvent(62, 0.3, 0.9, 0.5)]
    probs = clf.classify(x, notes)
    assert probs.shape == (2, len(TIMBRE_FAMILIES)) and probs.dtype == np.float32
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert clf.classify(x, []).shape == (0, len(TIMBRE_FAMILIES))


def test_weights_are_checked(tmp_path: Path) -> None:
    missing = tmp_path / "none.onnx"
    assert not FamilyClassifier.available(missing)
    with pytest.raises(ModelError, match="not found"):
        FamilyClassifier(missing)

    damaged = tmp_path / "damaged.onnx"
    _tiny_model(damaged)
    damaged.write_bytes(damaged.read_bytes() + b"\0")
    with pytest.raises(ModelError, match="damaged"):
        FamilyClassifier(damaged)

    no_sum = tmp_path / "nosum.onnx"
    _tiny_model(no_sum)
    no_sum.with_name("nosum.onnx.sha256").unlink()
    with pytest.raises(ModelError, match="checksum"):
        FamilyClassifier(no_sum)

    other = tmp_path / "other.onnx"
    _tiny_model(other, families=["bass", "piano"])
    with pytest.raises(ModelError, match="predicts"):
        FamilyClassifier(other)

    old = tmp_path / "old.onnx"
    _tiny_model(old, n_features=N_FEATURES - 1)
    with pytest.raises(ModelError, match="features"):
        FamilyClassifier(old)

    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    import hashlib

    garbage.with_name("garbage.onnx.sha256").write_text(hashlib.sha256(b"not a model").hexdigest())
    with pytest.raises(ModelError, match="could not be loaded"):
        FamilyClassifier(garbage)


needs_weights = pytest.mark.skipif(
    not FamilyClassifier.available(), reason="stemscribe/weights/timbre.onnx absent"
)


@needs_weights
def test_shipped_model_hears_bass_and_flute() -> None:
    """Rendered with FluidR3_GM (never seen in training): a bass line under a flute melody."""
    tinysoundfont = pytest.importorskip("tinysoundfont")
    font = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
    if not font.is_file():
        pytest.skip(f"{font} absent (Debian package fluid-soundfont-gm)")
    synth = tinysoundfont.Synth(samplerate=SAMPLE_RATE)
    sfid = synth.sfload(str(font))
    synth.program_select(0, sfid, 0, 33)  # Electric Bass (finger)
    synth.program_select(1, sfid, 0, 73)  # Flute
    bass = [(0.0, 36), (0.5, 43), (1.0, 41), (1.5, 38), (2.0, 36), (2.5, 43)]
    flute = [(0.25, 79), (0.75, 81), (1.25, 84), (1.75, 83), (2.25, 79)]
    events = sorted([(t, 0, k) for t, k in bass] + [(t, 1, k) for t, k in flute])
    out, pos, notes = [], 0, []
    for t, ch, key in events:
        s = int(t * SAMPLE_RATE)
        out.append(np.frombuffer(synth.generate(s - pos), np.float32).reshape(-1, 2).mean(axis=1))
        pos = s
        synth.notes_off(ch)
        synth.noteon(ch, key, 100)
        notes.append(NoteEvent(key, t, t + 0.45, 0.8))
    out.append(np.frombuffer(synth.generate(SAMPLE_RATE), np.float32).reshape(-1, 2).mean(axis=1))
    x = np.concatenate(out).astype(np.float32)
    probs = FamilyClassifier().classify(x, notes)
    assert probs.shape == (len(notes), len(TIMBRE_FAMILIES))
    names = [TIMBRE_FAMILIES[i] for i in probs.argmax(axis=1)]
    got_bass = [n for n, note in zip(names, notes, strict=True) if note.pitch < 50]
    got_flute = [n for n, note in zip(names, notes, strict=True) if note.pitch >= 70]
    assert got_bass.count(Family.BASS) >= len(got_bass) - 1, got_bass
    assert got_flute.count(Family.WINDS) >= len(got_flute) - 1, got_flute


def test_many_notes_in_chunks_match_one_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    from stemscribe.transcription import timbre

    rng = np.random.default_rng(1)
    x = (0.1 * rng.standard_normal(SAMPLE_RATE * 8)).astype(np.float32)
    pitch = rng.integers(28, 100, 700)
    start = rng.uniform(0.0, 8.0, 700)
    end = start + rng.uniform(0.05, 2.0, 700)
    monkeypatch.setattr(timbre, "_NOTE_CHUNK", 100)
    chunked = note_features(x, pitch, start, end)
    monkeypatch.setattr(timbre, "_NOTE_CHUNK", 10_000)
    assert np.array_equal(chunked, note_features(x, pitch, start, end))
