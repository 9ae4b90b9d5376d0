"""Tempo and beats from an onset-strength envelope: autocorrelation tempo, phase search, local snapping."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

ENVELOPE_SR = 22050
ENVELOPE_HOP = 256
ENVELOPE_RATE = ENVELOPE_SR / ENVELOPE_HOP


@dataclass(frozen=True, slots=True)
class BeatGrid:
    """Median tempo in BPM and beat times in seconds (empty when no pulse was found)."""

    tempo: float
    beats: npt.NDArray[np.float64]


def onset_envelope(samples: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """(n_frames,) log-magnitude spectral flux of 22050 Hz mono audio at 86 frames/s."""
    from scipy.ndimage import uniform_filter1d

    from stemscribe.audio import magnitude_blocks

    parts = []
    for mag, lead in magnitude_blocks(samples.astype(np.float32), 1024, ENVELOPE_HOP):
        log = np.log1p(100.0 * mag)
        parts.append(np.maximum(np.diff(log, axis=1, prepend=log[:, :1]), 0.0).mean(axis=0)[lead:])
    flux = np.concatenate(parts)
    flux = flux - uniform_filter1d(flux, size=16, mode="nearest")  # remove the slow trend
    return np.maximum(flux, 0.0).astype(np.float32)


def estimate_tempo(
    envelope: npt.NDArray[np.float32], *, lo_bpm: float = 60.0, hi_bpm: float = 200.0
) -> float:
    """Tempo in BPM: the autocorrelation peak of the envelope, weighted towards 120 BPM (0 if no pulse)."""
    n = envelope.size
    if n < 4 * ENVELOPE_RATE or not np.any(envelope > 0):
        return 0.0
    from scipy.ndimage import gaussian_filter1d

    # Smooth so that a period falling between two frames still correlates.
    x = gaussian_filter1d(envelope.astype(np.float64), 1.5)
    x = x - x.mean()
    spec = np.fft.rfft(x, 2 * n)
    ac = np.fft.irfft(spec * np.conj(spec))[:n]
    if ac[0] <= 0:
        return 0.0
    ac /= ac[0]
    lags = np.arange(n)
    lo_lag, hi_lag = int(ENVELOPE_RATE * 60 / hi_bpm), int(ENVELOPE_RATE * 60 / lo_bpm)
    lag = lags[lo_lag : hi_lag + 1].astype(np.float64)
    bpm = 60.0 * ENVELOPE_RATE / lag
    prior = np.exp(-0.5 * (np.log2(bpm / 120.0) / 0.9) ** 2)
    # Reward lags whose double also correlates (a real beat period repeats).
    double = ac[np.minimum((2 * lag).astype(int), n - 1)]
    score = (ac[lo_lag : hi_lag + 1] + 0.5 * double) * prior
    best = int(np.argmax(score))
    if ac[lo_lag + best] < 0.05:
        return 0.0
    # Parabolic refinement of the lag.
    i = lo_lag + best
    if 1 <= i < n - 1:
        a, b, c = ac[i - 1], ac[i], ac[i + 1]
        denom = a - 2 * b + c
        shift = 0.5 * (a - c) / denom if denom != 0 else 0.0
        return float(60.0 * ENVELOPE_RATE / (i + float(np.clip(shift, -0.5, 0.5))))
    return float(bpm[best])


def track_beats(samples: npt.NDArray[np.float32]) -> BeatGrid:
    """Beat grid of 22050 Hz mono audio: period from `estimate_tempo`, best phase, beats snapped locally."""
    env = onset_envelope(samples)
    tempo = estimate_tempo(env)
    if tempo <= 0:
        return BeatGrid(0.0, np.zeros(0))
    period = ENVELOPE_RATE * 60.0 / tempo
    n = env.size
    # Phase: the offset whose comb of beats collects the most onset strength.
    phases = np.arange(int(np.ceil(period)))
    comb = phases[:, None] + period * np.arange(int(n / period) + 1)[None, :]
    valid = comb < n
    gathered = np.where(valid, env[np.minimum(comb.astype(int), n - 1)], 0.0)
    phase = int(phases[np.argmax(gathered.sum(axis=1))])
    beats = phase + period * np.arange(int((n - phase) / period) + 1)
    # Snap each beat to the strongest envelope frame within +-10% of a period.
    radius = max(1, int(0.1 * period))
    offsets = np.arange(-radius, radius + 1)
    idx = np.clip(np.rint(beats).astype(int)[:, None] + offsets[None, :], 0, n - 1)
    weights = np.exp(-0.5 * (offsets / (radius + 1e-9)) ** 2)
    snapped = idx[
        np.arange(idx.shape[0]), np.argmax(env[idx] * weights[None, :] + 1e-9 * weights[None, :], axis=1)
    ]
    snapped = np.maximum.accumulate(snapped.astype(np.float64))
    snapped = snapped[np.concatenate([[True], np.diff(snapped) > 0.5 * period])]
    times = snapped / ENVELOPE_RATE
    median = float(np.median(np.diff(times))) if times.size > 2 else 60.0 / tempo
    return BeatGrid(60.0 / median, times)
