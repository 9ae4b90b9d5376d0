"""training.program: the masked loss learns a family's programs, and train -> export -> ProgramClassifier."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stemscribe.stems import Family
from stemscribe.transcription.programs import ProgramClassifier, family_programs
from stemscribe.transcription.timbre import N_FEATURES, TIMBRE_FAMILIES

pytest.importorskip("torch")
pytest.importorskip("onnx")


def test_train_export_load(tmp_path: Path) -> None:
    from training.program.export import export
    from training.program.train import train

    rng = np.random.default_rng(0)
    guitar = TIMBRE_FAMILIES.index(Family.GUITAR)
    programs = np.array([24, 27, 30, 105])
    for split, n in (("train", 3000), ("valid", 200)):
        which = rng.integers(0, len(programs), n)
        features = (0.5 * rng.standard_normal((n, N_FEATURES))).astype(np.float32)
        features[np.arange(n), which] += 3.0  # learnable
        np.savez(
            tmp_path / f"{split}.npz",
            features=features,
            family=np.full(n, guitar),
            program=programs[which],
            clip=np.arange(n),
        )
    best = train(tmp_path, tmp_path / "run", seed=0, epochs=20, hidden=32, lr=1e-2, dropout=0.0, threads=1)
    assert best["accuracy"] > 0.8
    weights = tmp_path / "program.onnx"
    export(tmp_path / "run", weights)
    clf = ProgramClassifier(weights)
    x = np.load(tmp_path / "valid.npz")
    probs = clf.probabilities(x["features"], Family.GUITAR)
    picked = np.array(family_programs(Family.GUITAR))[probs.argmax(axis=1)]
    assert float((picked == x["program"]).mean()) > 0.8
