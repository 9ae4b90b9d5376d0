"""Decode any common audio file (or array) into float32 samples at a chosen rate.

soundfile (libsndfile) is tried first: fast, exact for WAV/FLAC/OGG/AIFF and MP3. PyAV (FFmpeg)
is the fallback for everything else (M4A/AAC, Opus in odd containers, video files' audio).
Every decoder's failure is kept, so the error names what was tried.

Also the signal helpers every stage shares: the vectorised STFT and its inverse (one batched FFT
per call, no per-frame Python work) and the block cutting that keeps long songs in flat memory.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, cast

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from stemscribe.errors import (
    AudioTooLongError,
    CorruptAudioError,
    EmptyAudioError,
    NotAudioError,
)

DEFAULT_MAX_DURATION = 20 * 60.0
AudioSource = str | Path | bytes | BinaryIO


@dataclass(frozen=True, slots=True)
class Audio:
    """Decoded audio: `samples` is (n,) when mono, else (channels, n); float32 in -1..1."""

    samples: npt.NDArray[np.float32]
    sr: int

    @property
    def duration(self) -> float:
        return float(self.samples.shape[-1]) / self.sr

    @property
    def mono(self) -> npt.NDArray[np.float32]:
        """(n,) the channel average."""
        if self.samples.ndim == 1:
            return self.samples
        return np.ascontiguousarray(self.samples.mean(axis=0, dtype=np.float32))


def resample(samples: npt.NDArray[np.float32], sr_in: int, sr_out: int) -> npt.NDArray[np.float32]:
    """Resample (n,) or (channels, n) audio with soxr's high-quality filter."""
    if sr_in == sr_out or samples.shape[-1] == 0:
        return samples.astype(np.float32, copy=False)
    import soxr

    if samples.ndim == 1:
        return np.asarray(soxr.resample(samples, sr_in, sr_out), dtype=np.float32)
    out = soxr.resample(np.ascontiguousarray(samples.T), sr_in, sr_out)
    return np.ascontiguousarray(np.asarray(out, dtype=np.float32).T)


def _name(source: AudioSource) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    return "<bytes>" if isinstance(source, (bytes, bytearray)) else "<stream>"


class _Truncated(CorruptAudioError):
    """The container's own header proves data is missing: final, no other decoder may paper over it."""


def _clean(exc: BaseException) -> str:
    """An exception's first line, without the in-memory stream's repr that decoders put in it."""
    import re

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-f]+>:?", "", text)
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text)
    return text.replace(": '<none>'", "").strip()


def _read_soundfile(
    data: bytes | str, max_duration: float, mono: bool
) -> tuple[npt.NDArray[np.float32], int]:
    import soundfile as sf

    handle = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        f = sf.SoundFile(handle)
    except Exception as exc:  # noqa: BLE001 - libsndfile reports every refusal as a RuntimeError
        raise NotAudioError(_clean(exc)) from None
    with f:
        sr = int(f.samplerate)
        if f.frames > 0 and f.frames / sr > max_duration:
            raise AudioTooLongError(f"audio is {f.frames / sr:.1f} s long; the limit is {max_duration:.0f} s")
        declared = int(f.frames)
        try:
            frames = f.read(dtype="float32", always_2d=True)
        except Exception as exc:  # noqa: BLE001
            raise CorruptAudioError(f"decoding failed: {_clean(exc)}") from None
    if declared > 0 and frames.shape[0] < declared * 0.99:
        raise _Truncated(f"truncated: header declares {declared} frames, only {frames.shape[0]} present")
    if isinstance(data, bytes):
        _check_riff_complete(data[:65536], len(data))
    else:
        with open(data, "rb") as fh:
            _check_riff_complete(fh.read(65536), os.path.getsize(data))
    if mono:  # downmix before anything else: a long stereo file then costs one channel's memory
        return frames.mean(axis=1, dtype=np.float32)[None, :], sr
    return np.ascontiguousarray(frames.T), sr


def _check_riff_complete(head: bytes, total: int) -> None:
    """Raise CorruptAudioError when a RIFF/WAVE file's data chunk is cut short.

    `head` is the file's first bytes (the chunk headers before the data), `total` its size.
    """
    data = head
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        return
    order: Literal["little", "big"] = "little" if data[:4] == b"RIFF" else "big"
    pos = 12
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos + 4 : pos + 8], order)
        if data[pos : pos + 4] == b"data":
            available = total - pos - 8
            if size not in (0, 0xFFFFFFFF) and available < size:
                raise _Truncated(f"truncated WAV: data chunk declares {size} bytes, {available} present")
            return
        pos += 8 + size + (size & 1)


def _read_pyav(data: bytes | str, max_duration: float, mono: bool) -> tuple[npt.NDArray[np.float32], int]:
    import av

    handle = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        opened = av.open(handle, mode="r")
    except Exception as exc:  # noqa: BLE001 - FFmpeg's open errors all mean "not a format I know"
        raise NotAudioError(_clean(exc)) from None
    with opened as container:
        streams = container.streams.audio
        if not streams:
            raise NotAudioError("container has no audio stream")
        stream = streams[0]
        if stream.duration is not None and stream.time_base is not None:
            declared = float(stream.duration * stream.time_base)
            if declared > max_duration:
                raise AudioTooLongError(f"audio is {declared:.1f} s long; the limit is {max_duration:.0f} s")
        sr = int(stream.codec_context.sample_rate or stream.rate or 0)
        if sr <= 0:
            raise CorruptAudioError("audio stream declares no sample rate")
        channels = max(1, int(stream.codec_context.channels or 1))
        layout = "mono" if mono or channels == 1 else "stereo"  # FFmpeg downmixes as it decodes
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=sr)
        chunks: list[npt.NDArray[np.float32]] = []
        total = 0
        limit = int(max_duration * sr) + 1
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    arr = out.to_ndarray().astype(np.float32, copy=False)
                    chunks.append(arr)
                    total += arr.shape[1]
                if total > limit:
                    raise AudioTooLongError(f"audio is longer than the limit of {max_duration:.0f} s")
        except av.error.FFmpegError as exc:
            raise CorruptAudioError(f"decoding failed after {total / sr:.2f} s: {_clean(exc)}") from None
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().astype(np.float32, copy=False))
    if not chunks:
        return np.zeros((1, 0), dtype=np.float32), sr
    return np.ascontiguousarray(np.concatenate(chunks, axis=1)), sr


def load_audio(
    source: AudioSource,
    *,
    sr: int | None = 22050,
    mono: bool = True,
    max_duration: float = DEFAULT_MAX_DURATION,
) -> Audio:
    """Decode `source` (a path, bytes or a binary stream) to float32 at `sr` (None keeps the file's rate).

    Raises NotAudioError, EmptyAudioError, CorruptAudioError or AudioTooLongError, each naming the
    decoders that were tried.
    """
    name = _name(source)
    data: bytes | str
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise NotAudioError(f"{name}: no such file")
        if path.stat().st_size == 0:
            raise EmptyAudioError(f"{name}: the file is empty (0 bytes)")
        data = str(path)  # decoders read the file themselves: no copy of it in memory
    elif isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        data = source.read()
    if isinstance(data, bytes) and len(data) == 0:
        raise EmptyAudioError(f"{name}: the input is empty (0 bytes)")

    failures: list[str] = []
    decoded: tuple[npt.NDArray[np.float32], int] | None = None
    corrupt = False
    for label, reader in (("soundfile", _read_soundfile), ("pyav/ffmpeg", _read_pyav)):
        try:
            decoded = reader(data, max_duration, mono)
            break
        except AudioTooLongError as exc:
            raise AudioTooLongError(f"{name}: {exc}") from None
        except _Truncated as exc:
            raise CorruptAudioError(f"{name}: {exc} (decoder: {label})") from None
        except CorruptAudioError as exc:
            corrupt = True
            failures.append(f"{label}: {exc}")
        except NotAudioError as exc:
            failures.append(f"{label}: {exc}")
    if decoded is None:
        tried = "; ".join(failures)
        if corrupt:
            raise CorruptAudioError(f"{name}: audio is truncated or corrupt (tried {tried})")
        raise NotAudioError(f"{name}: not a recognised audio format (tried {tried})")

    samples, file_sr = decoded
    if samples.shape[-1] == 0:
        raise EmptyAudioError(f"{name}: decoded to zero samples")
    if not np.all(np.isfinite(samples)):
        raise CorruptAudioError(f"{name}: decoded samples contain NaN or infinity")
    return from_array(samples, file_sr, sr=sr, mono=mono, max_duration=max_duration, name=name)


def from_array(
    samples: npt.ArrayLike,
    sample_rate: int,
    *,
    sr: int | None = 22050,
    mono: bool = True,
    max_duration: float = DEFAULT_MAX_DURATION,
    name: str = "<array>",
) -> Audio:
    """Wrap an array, (n,), (channels, n) or (n, channels) with channels <= 8, as Audio at `sr`."""
    arr = np.asarray(samples)
    if arr.dtype.kind in "iu":
        info = np.iinfo(arr.dtype)
        arr = arr.astype(np.float32) / float(max(abs(info.min), info.max))
    arr = arr.astype(np.float32, copy=False)
    if arr.ndim == 2 and arr.shape[0] > 8 and arr.shape[1] <= 8:
        arr = arr.T
    if arr.ndim not in (1, 2):
        raise NotAudioError(f"{name}: expected a 1-D or 2-D array, got shape {arr.shape}")
    if sample_rate <= 0 or not math.isfinite(sample_rate):
        raise NotAudioError(f"{name}: invalid sample rate {sample_rate}")
    if arr.shape[-1] == 0:
        raise EmptyAudioError(f"{name}: the array holds zero samples")
    if not np.all(np.isfinite(arr)):
        raise CorruptAudioError(f"{name}: samples contain NaN or infinity")
    duration = arr.shape[-1] / sample_rate
    if duration > max_duration:
        raise AudioTooLongError(f"{name}: audio is {duration:.1f} s long; the limit is {max_duration:.0f} s")
    if mono and arr.ndim == 2:
        arr = arr.mean(axis=0, dtype=np.float32)
    target = sample_rate if sr is None else sr
    return Audio(resample(np.ascontiguousarray(arr), int(sample_rate), int(target)), int(target))


# --- short-time Fourier transforms and blocks ---------------------------------------------------


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
    return cast(npt.NDArray[np.float32], (out / np.maximum(norm, 1e-3))[pad : pad + length])
