"""training.verify: candidate labels, the stem generator, a worker job, train -> export -> NoteVerifier."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from stemscribe.transcription.notes import NoteArrays
from stemscribe.transcription.timbre import TIMBRE_FAMILIES
from stemscribe.transcription.verify import N_FEATURES, N_SCALARS, ROLES, THRESHOLD_SCALE, NoteVerifier

TIMGM = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
AGREES = N_SCALARS - 1  # the "among the reference notes" column of note_features
GROOVE = {
    "duration": 2.0,
    "drums": [[0.0, 36, 100, 1], [0.5, 38, 100, 1], [1.0, 36, 100, 1], [1.5, 38, 100, 1]],
    "tracks": [
        [33, [[0.0, 0.4, 36, 90], [1.0, 1.4, 43, 90]]],
        [0, [[0.0, 1.0, 60, 80], [0.0, 1.0, 64, 80]]],
    ],
}


@pytest.fixture(scope="module")
def renderer():  # type: ignore[no-untyped-def]
    pytest.importorskip("tinysoundfont")
    if not TIMGM.is_file():
        pytest.skip(f"{TIMGM} absent (Debian package timgm6mb-soundfont)")
    from training.drums.data import Renderer

    return Renderer((TIMGM,))


def test_labels_match_onset_within_50_ms_and_pitch() -> None:
    pytest.importorskip("mir_eval")
    from training.verify.data import label_candidates

    truth = [(1.0, 1.5, 60, 90), (2.0, 2.4, 64, 80), (3.0, 3.0, 67, 70)]  # the last has no length
    starts = np.array([1.04, 1.96, 2.0, 3.0, 3.07, 0.5, 1.0])
    ends = np.array([1.2, 2.5, 2.5, 3.2, 3.3, 0.7, 1.5])
    pitches = np.array([60, 64, 65, 67, 67, 60, 61], np.int64)
    y = label_candidates(truth, starts, ends, pitches)
    assert y.dtype == np.bool_ and y.shape == (7,)
    # 40 ms late, 40 ms early, a semitone off, exact (offsets ignored), 70 ms late, no true note,
    # right onset but a semitone off.
    assert y.tolist() == [True, True, False, True, False, False, False]

    # Two candidates for one true note: only one is matched.
    y = label_candidates(
        [(1.0, 1.5, 60, 90)], np.array([1.0, 1.02]), np.array([1.5, 1.5]), np.array([60, 60])
    )
    assert y.sum() == 1
    # Two true notes at the same pitch and onset: two candidates match.
    y = label_candidates(
        [(1.0, 1.5, 60, 90), (1.01, 1.5, 60, 90)],
        np.array([1.0, 1.02]),
        np.array([1.5, 1.5]),
        np.array([60, 60]),
    )
    assert y.tolist() == [True, True]
    # Offsets are ignored: a candidate far longer or shorter than its true note still matches.
    y = label_candidates([(1.0, 3.0, 60, 90)], np.array([1.0]), np.array([1.05]), np.array([60]))
    assert y.tolist() == [True]

    empty = np.zeros(0)
    assert label_candidates(truth, empty, empty, np.zeros(0, np.int64)).shape == (0,)
    assert label_candidates([], starts, ends, pitches).tolist() == [False] * 7


def test_stems_are_deterministic_and_in_range(renderer) -> None:  # type: ignore[no-untyped-def]
    from training.verify.data import _family_grooves, make_stem

    by_family = _family_grooves([GROOVE])
    families = set()
    for seed in range(8):
        args = {"seconds": 3.0, "augment": seed % 2 == 1, "grooves": [GROOVE], "by_family": by_family}
        audio, truth, family = make_stem(np.random.default_rng(seed), renderer, **args)
        again, truth_again, family_again = make_stem(np.random.default_rng(seed), renderer, **args)
        assert np.array_equal(audio, again) and truth == truth_again and family is family_again
        assert audio.dtype == np.float32 and audio.ndim == 1 and np.isfinite(audio).all()
        assert 3.0 * 22050 <= audio.shape[0] <= 3.6 * 22050
        assert family in TIMBRE_FAMILIES
        families.add(family)
        assert truth, seed
        assert np.abs(audio).max() > 0.01 and np.abs(audio).max() <= 1.0
        for start, end, pitch, velocity in truth:
            assert 0.0 <= start < 3.0 and start <= end <= 3.0
            assert 0 <= pitch < 128 and 1 <= velocity <= 127
    assert len(families) >= 3
    other = make_stem(np.random.default_rng(100), renderer, **args)[0]
    assert not np.array_equal(other, audio)


def test_worker_job(renderer, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("mir_eval")
    from training.verify import data

    monkeypatch.setattr(data, "_worker", {})
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))  # _init_worker sets it
    data._init_worker((TIMGM,), [GROOVE])
    seen = set()
    for index in range(4):
        out = data._work(("valid", 0, index))
        assert out is not None
        n = len(out["label"])
        assert out["features"].shape == (n, N_FEATURES) and out["features"].dtype == np.float32
        assert np.isfinite(out["features"]).all()
        assert out["label"].dtype == np.bool_
        assert 0 <= out["role"] < len(ROLES)
        seen.add(out["role"])
        if n:
            hot = out["features"][:, N_FEATURES - len(ROLES) :]
            assert (hot.argmax(axis=1) == out["role"]).all() and (hot.sum(axis=1) == 1).all()
        assert out["ref"] > 0 and 0 <= out["strict_tp"] <= out["strict"]
        assert int(out["label"].sum()) <= out["ref"]
        again = data._work(("valid", 0, index))
        assert np.array_equal(again["features"], out["features"]) and np.array_equal(
            again["label"], out["label"]
        )
    assert len(seen) >= 2


def test_thresholds_maximise_each_roles_f1() -> None:
    pytest.importorskip("torch")
    from training.verify.train import THRESHOLDS, choose_thresholds, role_f1, strict_f1

    vocals, mix = ROLES.index("vocals"), ROLES.index("mix")
    data = {
        "role": np.array([vocals] * 5 + [mix] * 3),
        "label": np.array([True, True, True, False, False, True, True, False]),
        "clip_role": np.array([vocals, mix]),
        "clip_ref": np.array([4, 2]),  # one true vocal note was never proposed
        "clip_strict": np.array([3, 2]),
        "clip_strict_tp": np.array([2, 1]),
    }
    probs = np.array([0.9, 0.8, 0.6, 0.3, 0.1, 0.95, 0.5, 0.2], np.float32)
    # Vocals keep 3 of 5 above 0.3: 3 right of 4 true notes; all 5 would be F1 6/9.
    assert role_f1(probs, data, vocals, 0.325) == pytest.approx(6 / 7)
    assert role_f1(probs, data, vocals, 0.05) == pytest.approx(6 / 9)
    assert role_f1(probs, data, vocals, 0.95) == 0.0
    assert strict_f1(data, vocals) == pytest.approx(4 / 7) and strict_f1(data, mix) == pytest.approx(0.5)
    chosen = choose_thresholds(probs, data)
    assert set(chosen) == {"vocals", "mix"}  # roles without clips get no threshold
    assert chosen["vocals"]["threshold"] == pytest.approx(0.325)  # the lowest of the best
    assert chosen["vocals"]["f1"] == pytest.approx(6 / 7)
    assert chosen["vocals"]["f1_thresholds_only"] == pytest.approx(4 / 7) and chosen["vocals"]["clips"] == 1
    assert chosen["mix"]["threshold"] == pytest.approx(0.225) and chosen["mix"]["f1"] == pytest.approx(1.0)
    assert all(r["threshold"] in THRESHOLDS.tolist() for r in chosen.values())


def _split(rng: np.random.Generator, clips: int, roles: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Candidates whose label is the "among the reference notes" feature; noise everywhere else."""
    per_clip = 40
    n = clips * per_clip
    clip = np.repeat(np.arange(clips), per_clip)
    clip_role = np.array([ROLES.index(roles[k % len(roles)]) for k in range(clips)])
    role = clip_role[clip]
    label = rng.random(n) < 0.5
    features = (0.5 * rng.standard_normal((n, N_FEATURES))).astype(np.float32)
    features[:, AGREES] = label
    features[:, N_FEATURES - len(ROLES) :] = 0.0
    features[np.arange(n), N_FEATURES - len(ROLES) + role] = 1.0
    positives = np.bincount(clip, weights=label, minlength=clips).astype(np.int64)
    return {
        "features": features,
        "label": label,
        "role": role,
        "clip": clip,
        "clip_role": clip_role,
        "clip_ref": positives + 2,  # two true notes per clip that no candidate found
        "clip_strict": positives,
        "clip_strict_tp": positives,
    }


@pytest.mark.slow
def test_train_export_load(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    import onnxruntime as ort

    from training.verify.train import THRESHOLDS, export, train

    rng = np.random.default_rng(0)
    roles = ("vocals", "mix")
    for split, clips in (("train", 150), ("valid", 30)):
        np.savez(tmp_path / f"{split}.npz", **_split(rng, clips, roles))
    run = tmp_path / "run"
    summary = train(tmp_path, run, epochs=12, hidden=32, seed=0, threads=1)
    assert set(summary["roles"]) == set(roles)
    assert len(summary["history"]) == 12
    best_possible = summary["valid_f1_thresholds_only"]  # every positive found, two misses per clip
    assert summary["best_valid_f1"] == pytest.approx(best_possible, abs=0.02)
    assert json.loads((run / "summary.json").read_text())["best_valid_f1"] == summary["best_valid_f1"]

    weights = tmp_path / "verify.onnx"
    digest = export(run, weights)
    assert weights.with_name("verify.onnx.sha256").read_text().split()[0] == digest
    verifier = NoteVerifier(weights)
    assert set(verifier.thresholds) == set(roles)
    for role in roles:
        assert verifier.thresholds[role] in THRESHOLDS.tolist()
        assert verifier.threshold(role) == pytest.approx(THRESHOLD_SCALE[role] * verifier.thresholds[role])
    assert verifier.threshold("piano") == pytest.approx(THRESHOLD_SCALE["piano"] * 0.5)  # no piano clips

    valid = np.load(tmp_path / "valid.npz")
    session = ort.InferenceSession(str(weights), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["roles"]) == list(ROLES) and meta["n_features"] == str(N_FEATURES)
    (probs,) = session.run(None, {"features": valid["features"]})
    probs = np.asarray(probs).reshape(-1)
    assert probs[valid["label"]].min() > probs[~valid["label"]].max()

    # Through note_features: candidates among the reference notes are kept, the others dropped.
    from stemscribe.transcription.pitch_model import Posteriors

    post = Posteriors(
        np.zeros((200, 88), np.float32), np.zeros((200, 88), np.float32), np.zeros((200, 264), np.float32)
    )
    starts = np.array([10, 40, 70, 100, 130, 160], np.int64)
    candidates = NoteArrays(
        starts, starts + 20, np.array([60, 62, 64, 65, 67, 69]), np.full(6, 0.7, np.float32)
    )
    reference = candidates.select(np.array([True, False, True, False, True, False]))
    for role in roles:
        kept = verifier.keep(post, np.zeros(200, np.float32), candidates, reference, role)
        assert kept.start.tolist() == [10, 70, 130], role
