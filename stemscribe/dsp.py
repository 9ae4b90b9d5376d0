"""Short-time Fourier transforms, vectorised: one batched FFT per call, no per-frame Python work."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view


def hann(n: int) -> npt.NDArray[np.float32]:
    """Periodic Hann window of length n."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)


def n_frames(n_samples: int, hop: int) -> int:
    """Frames of a centred STFT: frame k is centred on sample k * hop."""
    return n_samples // hop + 1


def stft(
    x: npt.NDArray[np.float32], n_fft: int, hop: int, frames: slice | None = None
) -> npt.NDArray[np.complex64]:
    """(n_fft // 2 + 1, n_frames) centred, Hann-windowed STFT of (n,) audio (zero padding at the edges).

    `frames` computes only that range of frames, so long audio can be analysed block by block.
    """
    import scipy.fft

    pad = n_fft // 2
    padded = np.pad(x.astype(np.float32, copy=False), (pad, pad + hop))
    windows = sliding_window_view(padded, n_fft)[::hop][: n_frames(x.shape[0], hop)]
    if frames is not None:
        windows = windows[frames]
    spec = scipy.fft.rfft(windows * hann(n_fft), axis=1, workers=-1)  # float32 in, complex64 out
    return np.ascontiguousarray(spec.T)


def magnitude_blocks(
    x: npt.NDArray[np.float32], n_fft: int, hop: int, *, block_frames: int = 8192
) -> Iterator[tuple[npt.NDArray[np.float32], int]]:
    """STFT magnitudes of `x`, block by block: (n_bins, frames) arrays and how many leading frames
    repeat the previous block's last frame (1 after the first block, so a flux can look back).

    Long songs are analysed in flat memory this way: one block holds at most `block_frames` frames.
    """
    total = n_frames(x.shape[0], hop)
    for f0 in range(0, total, block_frames):
        lead = 1 if f0 > 0 else 0
        yield np.abs(stft(x, n_fft, hop, frames=slice(f0 - lead, min(total, f0 + block_frames)))), lead


def blocks(n: int, block: int, margin: int) -> list[tuple[int, int, int, int]]:
    """Cut [0, n) into cores of `block` items, each read with `margin` items of context on both sides.

    Returns (read_start, read_stop, core_start, core_stop) tuples; the cores tile [0, n).
    """
    out = []
    for core in range(0, max(n, 1), block):
        stop = min(n, core + block)
        out.append((max(0, core - margin), min(n, stop + margin), core, stop))
    return out


def istft(spec: npt.NDArray[np.complex64], n_fft: int, hop: int, length: int) -> npt.NDArray[np.float32]:
    """Inverse of `stft` by windowed overlap-add, normalised by the summed squared window."""
    if n_fft % hop:
        raise ValueError("n_fft must be a multiple of hop")
    import scipy.fft

    window = hann(n_fft)
    frames = scipy.fft.irfft(spec.T, n=n_fft, axis=1, workers=-1).astype(np.float32) * window
    count = frames.shape[0]
    ratio = n_fft // hop
    total = hop * (count + ratio)
    out = np.zeros(total, dtype=np.float32)
    # Frames k, k + ratio, k + 2 * ratio, ... do not overlap: add each such group as one slab.
    for k in range(ratio):
        group = frames[k::ratio]
        start = k * hop
        out[start : start + group.size] += group.reshape(-1)
    norm = np.zeros(total, dtype=np.float32)
    w2 = np.tile(window**2, count + ratio)[: total - 0]
    for k in range(ratio):
        n_group = frames[k::ratio].shape[0]
        start = k * hop
        norm[start : start + n_group * n_fft] += w2[: n_group * n_fft]
    pad = n_fft // 2
    return (out / np.maximum(norm, 1e-3))[pad : pad + length]
