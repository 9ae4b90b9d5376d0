"""training.timbre: the mini-mix generator's labels, and train -> export -> FamilyClassifier."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stemscribe.stems import family_of_program
from stemscribe.transcription.timbre import N_FEATURES, TIMBRE_FAMILIES, FamilyClassifier

TIMGM = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")


@pytest.fixture(scope="module")
def renderer():  # type: ignore[no-untyped-def]
    pytest.importorskip("tinysoundfont")
    if not TIMGM.is_file():
        pytest.skip(f"{TIMGM} absent (Debian package timgm6mb-soundfont)")
    from training.drums.data import Renderer

    return Renderer((TIMGM,))


def test_clip_labels_match_programs_and_are_deterministic(renderer) -> None:  # type: ignore[no-untyped-def]
    from training.timbre.data import make_clip

    groove = {
        "duration": 2.0,
        "drums": [[0.0, 36, 100, 1], [0.5, 38, 100, 1], [1.0, 36, 100, 1], [1.5, 38, 100, 1]],
        "tracks": [
            [33, [[0.0, 0.4, 36, 90], [1.0, 1.4, 43, 90]]],
            [0, [[0.0, 1.0, 60, 80], [0.0, 1.0, 64, 80]]],
        ],
    }
    for seed in range(6):
        audio, labelled = make_clip(
            np.random.default_rng(seed), renderer, seconds=3.0, augment=seed % 2 == 1, grooves=[groove]
        )
        again, labelled_again = make_clip(
            np.random.default_rng(seed), renderer, seconds=3.0, augment=seed % 2 == 1, grooves=[groove]
        )
        assert np.array_equal(audio, again) and labelled == labelled_again
        assert audio.dtype == np.float32 and np.isfinite(audio).all() and np.abs(audio).max() > 0.01
        assert labelled
        for (start, end, pitch, velocity), family, program in labelled:
            assert TIMBRE_FAMILIES[family] is family_of_program(program)
            assert 0.0 <= start < 3.0 and end > start
            assert 0 <= pitch < 128 and 1 <= velocity <= 127


def test_varied_timbres_keep_a_clip_s_labels() -> None:
    pytest.importorskip("tinysoundfont")
    if not TIMGM.is_file():
        pytest.skip(f"{TIMGM} absent (Debian package timgm6mb-soundfont)")
    from training.timbre import data

    rows = {}
    for varied in (0.0, 1.0):
        data._init_worker((TIMGM,), [], varied)
        rows[varied] = [data._work(("train", 5, index)) for index in range(3)]
    for (plain, family, program), (other, family_v, program_v) in zip(rows[0.0], rows[1.0], strict=True):
        assert np.array_equal(family, family_v) and np.array_equal(program, program_v)
        assert plain.shape == other.shape
    # The same notes, other sounds: the features move.
    assert any(not np.allclose(a[0], b[0]) for a, b in zip(rows[0.0], rows[1.0], strict=True))
    data._init_worker((TIMGM,), [], 1.0)
    assert all(
        np.array_equal(a[0], b[0])
        for a, b in zip(rows[1.0], [data._work(("train", 5, i)) for i in range(3)], strict=True)
    )


@pytest.mark.slow
def test_train_export_load(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from training.timbre.export import export
    from training.timbre.train import train

    rng = np.random.default_rng(0)
    for split, n in (("train", 600), ("valid", 200)):
        family = rng.integers(0, len(TIMBRE_FAMILIES), n)
        features = (0.5 * rng.standard_normal((n, N_FEATURES))).astype(np.float32)
        features[np.arange(n), family] += 4.0  # learnable
        np.savez(tmp_path / f"{split}.npz", features=features, family=family, program=family, clip=family)
    best = train(tmp_path, tmp_path / "run", seed=0, epochs=30, hidden=32, lr=1e-2, threads=1)
    assert best["accuracy"] > 0.5
    weights = tmp_path / "timbre.onnx"
    export(tmp_path / "run", weights)
    clf = FamilyClassifier(weights)
    x = np.load(tmp_path / "valid.npz")
    probs = clf.classify_features(x["features"])
    assert probs.shape == (200, len(TIMBRE_FAMILIES))
    assert float((probs.argmax(axis=1) == x["family"]).mean()) > 0.5


def test_lower_bass_moves_a_whole_part_an_octave_down_and_never_below_a0() -> None:
    from training.timbre.data import LOWEST_PITCH, lower_bass

    part = [(0.0, 0.5, 36, 90), (0.5, 1.0, 43, 80)]
    moved = [lower_bass(np.random.default_rng(seed), part, 1.0) for seed in range(4)]
    assert all(m == [(0.0, 0.5, 24, 90), (0.5, 1.0, 31, 80)] for m in moved)
    too_low = [(0.0, 0.5, 28, 90), (0.5, 1.0, 40, 80)]  # 28 - 12 would fall below A0
    assert lower_bass(np.random.default_rng(0), too_low, 1.0) == too_low
    assert min(p for _, _, p, _ in moved[0]) >= LOWEST_PITCH
    # share 0 leaves the part and the generator's stream untouched (older shards stay as they were)
    rng, fresh = np.random.default_rng(5), np.random.default_rng(5)
    assert lower_bass(rng, part, 0.0) == part and rng.random() == fresh.random()
    kept = sum(lower_bass(np.random.default_rng(s), part, 0.4) == part for s in range(400))
    assert 200 < kept < 280  # about 60% stay where they were
