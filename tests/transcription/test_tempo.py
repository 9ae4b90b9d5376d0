from __future__ import annotations

import numpy as np

from stemscribe.transcription.tempo import track_beats


def _clicks(bpm: float, seconds: float, sr: int = 22050, offset: float = 0.25) -> np.ndarray:
    x = np.zeros(int(seconds * sr), np.float32)
    rng = np.random.default_rng(0)
    for t in np.arange(offset, seconds, 60.0 / bpm):
        i = int(t * sr)
        burst = rng.normal(0, 0.5, 300).astype(np.float32) * np.exp(-np.arange(300) / 60)
        x[i : i + 300] += burst[: x.size - i]
    return x


def test_click_track_tempo_and_beats() -> None:
    for bpm in (90.0, 120.0, 150.0):
        grid = track_beats(_clicks(bpm, 12.0))
        assert abs(grid.tempo - bpm) < 2.0, (bpm, grid.tempo)
        period = 60.0 / bpm
        truth = np.arange(0.25, 12.0, period)
        hits = sum(np.min(np.abs(truth - b)) < 0.03 for b in grid.beats)
        assert hits >= 0.8 * truth.size


def test_no_pulse_no_beats() -> None:
    grid = track_beats(np.zeros(22050 * 6, np.float32))
    assert grid.beats.size == 0
