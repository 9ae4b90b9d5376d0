"""`training.drums.train --resume`: exact continuation from a full checkpoint, weights-only fallback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stemscribe.transcription.drum_model import FPS, N_CLASSES, N_MELS

torch = pytest.importorskip("torch", reason="training needs torch (the train extra)")

TINY = ["--seed", "3", "--width", "8", "--hidden", "4", "--batch", "2", "--window", "40", "--eval-every", "1"]


def _write_split(folder: Path, n_clips: int, frames: int, rng: np.random.Generator) -> None:
    folder.mkdir(parents=True)
    features, clips, labels = [], [], []
    for i in range(n_clips):
        features.append((rng.standard_normal((frames, N_MELS)) * 3 - 8).astype(np.float16))
        clips.append((i * frames, frames, i % 2))
        for t in np.sort(rng.uniform(0, frames / FPS, 6)):
            labels.append((i, t, rng.integers(N_CLASSES), rng.uniform(0.2, 1.0)))
    np.save(folder / "features.npy", np.concatenate(features))
    np.save(folder / "clips.npy", np.array(clips, np.int64))
    np.save(folder / "labels.npy", np.array(labels, np.float64))
    (folder / "meta.json").write_text(json.dumps({"clips": n_clips}))


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    _write_split(tmp_path / "data" / "train", 4, 90, rng)
    _write_split(tmp_path / "data" / "valid", 2, 60, rng)
    return tmp_path / "data"


def _run(data: Path, out: Path, *extra: str) -> None:
    from training.drums.train import main

    main([*TINY, "--data", str(data), "--out", str(out), "--threads", "1", *extra])


def _state(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_resume_from_full_checkpoint_continues_exactly(data: Path, tmp_path: Path) -> None:
    _run(data, tmp_path / "whole", "--steps", "4")
    # Stop after the first step (time budget), then resume its last.pt elsewhere to the same end.
    _run(data, tmp_path / "part", "--steps", "4", "--max-minutes", "1e-9")
    part = _state(tmp_path / "part" / "last.pt")
    assert part["step"] == 1 and {"optimizer", "scheduler", "numpy_rng", "torch_rng"} <= part.keys()
    _run(data, tmp_path / "rest", "--steps", "4", "--resume", str(tmp_path / "part" / "last.pt"))

    whole, rest = _state(tmp_path / "whole" / "last.pt"), _state(tmp_path / "rest" / "last.pt")
    assert whole["step"] == rest["step"] == 4
    _assert_same_weights(whole["state"], rest["state"])
    whole_curve = json.loads((tmp_path / "whole" / "curve.json").read_text())
    rest_curve = json.loads((tmp_path / "rest" / "curve.json").read_text())
    assert [p["step"] for p in rest_curve] == [1, 2, 3, 4]  # the resumed run's curve carries step 1 on
    for a, b in zip(whole_curve, rest_curve, strict=True):
        for key in ("train_onset_loss", "valid_f1", "lr"):
            assert a[key] == b[key], (a["step"], key)


def test_resume_from_weights_only_uses_fresh_optimizer_at_lower_lr(data: Path, tmp_path: Path) -> None:
    _run(data, tmp_path / "first", "--steps", "2")
    full = _state(tmp_path / "first" / "last.pt")
    weights_only = tmp_path / "old" / "checkpoint.pt"
    weights_only.parent.mkdir()
    torch.save({k: full[k] for k in ("state", "config", "step", "valid_f1")}, weights_only)

    for out in ("again1", "again2"):
        _run(data, tmp_path / out, "--steps", "5", "--resume", str(weights_only), "--resume-lr", "1e-4")
    full_path = str(tmp_path / "first" / "last.pt")
    _run(
        data,
        tmp_path / "again3",
        "--steps",
        "5",
        "--resume",
        full_path,
        "--resume-lr",
        "1e-4",
        "--fresh-optimizer",
    )
    a, b = _state(tmp_path / "again1" / "last.pt"), _state(tmp_path / "again2" / "last.pt")
    assert a["step"] == 5 and a["lr_base"] == 1e-4 and a["sched_start"] == 2
    _assert_same_weights(a["state"], b["state"])  # deterministic from the seed
    _assert_same_weights(a["state"], _state(tmp_path / "again3" / "last.pt")["state"])
    moved = [not torch.equal(a["state"][k], full["state"][k]) for k in full["state"]]
    assert any(moved), "resumed training did not update the weights"
    curve = json.loads((tmp_path / "again1" / "curve.json").read_text())
    assert [p["step"] for p in curve] == [3, 4, 5]
    assert all(0 < p["lr"] <= 1e-4 for p in curve[:-1]) and curve[-1]["lr"] == 0.0
    # The resumed start is the best so far until a later step beats it on validation.
    best = _state(tmp_path / "again1" / "checkpoint.pt")
    assert best["valid_f1"] >= full["valid_f1"]
    assert (tmp_path / "again1" / "thresholds.json").is_file()


def test_resume_needs_steps_beyond_the_checkpoint(data: Path, tmp_path: Path) -> None:
    _run(data, tmp_path / "first", "--steps", "2")
    with pytest.raises(SystemExit, match="must exceed"):
        _run(data, tmp_path / "more", "--steps", "2", "--resume", str(tmp_path / "first" / "last.pt"))
