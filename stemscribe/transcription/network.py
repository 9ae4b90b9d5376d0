"""Our own transcription network: which family plays which pitch, frame by frame, from a mix or a stem.

Input, per frame of basic-pitch's grid (`pitch_model.frame_samples`, ~11.6 ms) and per piano pitch
(88, A0..C8): `N_CHANNELS` channels = basic-pitch's note and onset posteriors, and the log magnitude
of the audio's spectrum at `HARMONICS` multiples of the pitch's fundamental (a harmonic stack: what
the partials of a note at that pitch look like, which is what tells a flute from a violin). The
network (`weights/transcriber.onnx`, trained here, see `training/transcriber/`) is convolutional over
time and pitch and returns, for each of the nine families of `TIMBRE_FAMILIES`, onset and frame
posteriors and a velocity: (n_frames, 9, 88) each.

`NetworkTranscriber.posteriors` runs it over a whole song in overlapping chunks (bounded memory);
`family_notes` decodes one family's posteriors with the polyphonic decoder of `notes`.
"""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.fft

from stemscribe.errors import ModelError
from stemscribe.transcription.notes import DecodeOptions, NoteArrays, decode_polyphonic
from stemscribe.transcription.pitch_model import (
    FFT_HOP,
    MIDI_OFFSET,
    N_PITCHES,
    SAMPLE_RATE,
    Posteriors,
    frame_samples,
)
from stemscribe.transcription.timbre import TIMBRE_FAMILIES
from stemscribe.transcription.weights import open_session, shipped_weights

WEIGHTS_NAME = "transcriber.onnx"
FEATURE_VERSION = 1
N_FFT = 2048
HARMONICS = np.array([0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], dtype=np.float64)
N_CHANNELS = 2 + len(HARMONICS)
N_FAMILIES = len(TIMBRE_FAMILIES)
_FLOOR = -12.0  # natural-log range kept below the reference level (~104 dB)
_CEIL = 1.0
_SCALE = 4.0
_EPS = 1e-6
_FFT_CHUNK = 4096  # frames per FFT batch (33 MB of spectra)
CHUNK_FRAMES = 2048  # frames per network call
MIN_CHUNK_FRAMES = 512  # a short song is cut no finer than this to keep workers busy
MAX_WORKERS = 4
CONTEXT_FRAMES = 48  # frames of context on each side of a chunk (the receptive field is smaller)


def _harmonic_bins() -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Lower FFT bin and interpolation weight of each (harmonic, pitch): (len(HARMONICS) * 88,) each.

    Partials above the last bin read bin 0 with weight 0 on its neighbour (silence, after the FLOOR).
    """
    n_bins = N_FFT // 2 + 1
    pitches = np.arange(N_PITCHES) + MIDI_OFFSET
    f0 = 440.0 * 2.0 ** ((pitches - 69.0) / 12.0)
    pos = (HARMONICS[:, None] * f0[None, :] * N_FFT / SAMPLE_RATE).reshape(-1)  # fractional bins
    inside = pos < n_bins - 1
    lower = np.where(inside, np.floor(pos), 0).astype(np.int64)
    frac = np.where(inside, pos - np.floor(pos), 0.0).astype(np.float32)
    return lower, frac


_LOWER, _FRAC = _harmonic_bins()
_OUTSIDE = _LOWER == 0
_FUNDAMENTAL = int(np.flatnonzero(HARMONICS == 1.0)[0])  # harmonic 1's row of the stack
_F16_MIN_NORMAL = 2.0**-14


def _windowed_frames(
    view: npt.NDArray[np.float32], centres: npt.NDArray[np.int64], window: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """`view[centres] * window` ((len(centres), N_FFT)), copied run by run: the frames of one of
    basic-pitch's windows are FFT_HOP apart, so each run is a plain strided slice of `view` (numpy's
    fancy indexing of an overlapping window view copies several times slower)."""
    rows = np.empty((len(centres), N_FFT), np.float32)
    breaks = np.flatnonzero(np.diff(centres) != FFT_HOP) + 1
    for a, b in zip(np.r_[0, breaks], np.r_[breaks, len(centres)], strict=True):
        first = int(centres[a])
        np.multiply(view[first : first + FFT_HOP * (b - a - 1) + 1 : FFT_HOP], window, out=rows[a:b])
    return rows


@dataclass(frozen=True, slots=True)
class _Reading:
    """How cells of the harmonic stack read the spectrum: the FFT bins read (`bins`, sorted), and per
    cell the columns of `bins` below and above its fractional bin, the weight of the upper one, and
    whether it lies past the last bin (read as silence)."""

    bins: npt.NDArray[np.int64]
    below: npt.NDArray[np.int64]
    above: npt.NDArray[np.int64]
    frac: npt.NDArray[np.float32]
    outside: npt.NDArray[np.bool_]

    def cells(self, cols: slice) -> _Reading:
        """The same reading for only the cells `cols` (the same `bins`)."""
        return _Reading(self.bins, self.below[cols], self.above[cols], self.frac[cols], self.outside[cols])

    def read(self, mags: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """(m, n_cells) of (m, len(bins)) magnitudes at `bins`."""
        out = mags[:, self.below] * (1.0 - self.frac) + mags[:, self.above] * self.frac
        out[:, self.outside] = 0.0
        return out


def _reading(cols: slice) -> _Reading:
    lower = _LOWER[cols]
    bins, where = np.unique(np.concatenate([lower, lower + 1]), return_inverse=True)
    return _Reading(bins, where[: len(lower)], where[len(lower) :], _FRAC[cols], _OUTSIDE[cols])


_STACK = _reading(slice(None))  # every (harmonic, pitch) cell; a third of the FFT's bins
_FUNDAMENTALS = slice(_FUNDAMENTAL * N_PITCHES, (_FUNDAMENTAL + 1) * N_PITCHES)  # harmonic 1's cells
_FUNDAMENTAL_READING = _reading(_FUNDAMENTALS)


def _bin_magnitudes(
    samples: npt.NDArray[np.float32], frames: npt.NDArray[np.int64], bins: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32]:
    """(len(frames), len(bins)) magnitudes at FFT `bins` of Hann-windowed frames centred on
    `frame_samples(frames)` (outside the audio is silence)."""
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    half = N_FFT // 2
    padded = np.concatenate([np.zeros(half, np.float32), x, np.zeros(N_FFT, np.float32)])
    centres = np.minimum(frame_samples(frames).astype(np.int64), x.shape[0])
    view = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)
    window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)
    out = np.empty((len(frames), len(bins)), np.float32)
    for c in range(0, len(frames), _FFT_CHUNK):
        block = _windowed_frames(view, centres[c : c + _FFT_CHUNK], window)
        out[c : c + _FFT_CHUNK] = np.abs(scipy.fft.rfft(block, axis=1)[:, bins])
    return out


def spectrum_magnitudes(
    samples: npt.NDArray[np.float32], frames: npt.NDArray[np.int64], *, fundamentals_only: bool = False
) -> npt.NDArray[np.float32]:
    """(len(frames), len(HARMONICS), 88) spectrum magnitudes at the harmonics of every pitch.

    Frame f is a Hann-windowed FFT centred on sample `frame_samples(f)` (basic-pitch's grid, which is
    not uniform); outside the audio is silence. `fundamentals_only` gives (len(frames), 1, 88) at
    harmonic 1.
    """
    reading = _FUNDAMENTAL_READING if fundamentals_only else _STACK
    out = reading.read(_bin_magnitudes(samples, frames, reading.bins))
    return out.reshape(len(frames), out.shape[1] // N_PITCHES, N_PITCHES)


def song_reference(samples: npt.NDArray[np.float32], n_frames: int) -> float:
    """The log level a song's (or training clip's) features are measured against: a high percentile
    of the fundamentals' magnitudes over all its frames."""
    return _reference(spectrum_magnitudes(samples, np.arange(n_frames), fundamentals_only=True))


def _reference(fundamentals: npt.NDArray[np.float32]) -> float:
    if fundamentals.size == 0:
        return float(np.log(_EPS))
    return float(np.log(np.percentile(fundamentals, 99.5) + _EPS))


@dataclass(frozen=True, slots=True)
class SongSpectrum:
    """The audio's part of the network input over a whole song: the spectrum's magnitudes at the bins
    the harmonic stack reads, every frame (`bins`: (n_frames, ~330), a third of the stack's size), and
    the `reference` level they are measured against (one for the whole song, as for a training clip)."""

    bins: npt.NDArray[np.float32]
    reference: float

    @property
    def n_frames(self) -> int:
        return int(self.bins.shape[0])

    def stack(self, lo: int, hi: int) -> npt.NDArray[np.float32]:
        """`spectrum_magnitudes` of frames lo..hi: (hi - lo, len(HARMONICS), 88)."""
        return _STACK.read(self.bins[lo:hi]).reshape(hi - lo, len(HARMONICS), N_PITCHES)


def song_spectrum(samples: npt.NDArray[np.float32], n_frames: int) -> SongSpectrum:
    """`SongSpectrum` of (n,) mono 22.05 kHz audio over its `n_frames` frames: from the audio alone (one
    FFT per frame), so it can be made while basic-pitch's network runs."""
    bins = _bin_magnitudes(samples, np.arange(n_frames), _STACK.bins)
    return SongSpectrum(bins, _reference(_STACK.cells(_FUNDAMENTALS).read(bins)))


def to_float16(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float16]:
    """`x.astype(np.float16)`, bit for bit, at the speed of normal values.

    numpy converts a value below float16's normal range (2**-14) in a slow path that raises the
    underflow flag once per element, 30x slower than the rest; a network's posteriors are mostly
    such values. Here they are rounded to the nearest multiple of 2**-24 (float16's subnormal step;
    `np.rint` rounds half to even, as the conversion does) and their bits written directly.
    """
    x = np.asarray(x, dtype=np.float32)
    small = np.abs(x) < np.float32(_F16_MIN_NORMAL)
    out = np.where(small, np.float32(0.0), x).astype(np.float16)
    if small.any():
        tiny = x[small]
        steps = np.rint(np.abs(tiny) * np.float32(2.0**24)).astype(np.uint16)  # 0..1024, exact
        out.view(np.uint16)[small] = steps | (np.signbit(tiny).astype(np.uint16) << 15)
    return out


def network_input(
    post: Posteriors, mags: npt.NDArray[np.float32], reference: float
) -> npt.NDArray[np.float32]:
    """(N_CHANNELS, n_frames, 88) network input from posteriors and `spectrum_magnitudes`."""
    logmag = np.clip(np.log(mags + _EPS) - reference, _FLOOR, _CEIL) / _SCALE  # (T, H, 88)
    stack = np.concatenate(
        [post.note[:, None, :], post.onset[:, None, :], logmag.astype(np.float32)], axis=1
    )  # (T, C, 88)
    return np.ascontiguousarray(stack.transpose(1, 0, 2), dtype=np.float32)


@dataclass(frozen=True, slots=True)
class FamilyPosteriors:
    """The network's output over a song: `onset`, `frame`, `velocity`, each (n_frames, 9, 88) in 0..1
    (float16 from `NetworkTranscriber.posteriors`, float32 from training code)."""

    onset: npt.NDArray[np.floating[Any]]
    frame: npt.NDArray[np.floating[Any]]
    velocity: npt.NDArray[np.floating[Any]]

    @property
    def n_frames(self) -> int:
        return int(self.onset.shape[0])


def default_weights_path() -> Path:
    return shipped_weights(WEIGHTS_NAME)


@lru_cache(maxsize=4)
def _load(path: Path) -> tuple[object, dict[str, str]]:
    session, meta = open_session(path, 1, "transcription network")  # one thread: see NetworkTranscriber
    families = json.loads(meta.get("families", "null") or "null")
    if families != [f.value for f in TIMBRE_FAMILIES]:
        raise ModelError(f"transcription network {path} predicts {families}, expected the timbre families")
    if int(meta.get("feature_version", "-1")) != FEATURE_VERSION or int(meta.get("n_channels", "-1")) != (
        N_CHANNELS
    ):
        raise ModelError(
            f"transcription network {path} was trained on other features than this stemscribe computes"
        )
    return session, meta


_load_lock = threading.Lock()


class NetworkTranscriber:
    """The transcription network loaded once; `posteriors` is safe to call from threads.

    `threads` is how many chunks of a song `posteriors` runs at once (0: the machine's cores, at most
    4), each in one onnxruntime thread: the chunks are independent, so this scales where splitting
    each small convolution over threads does not, and the output does not depend on it.
    """

    def __init__(self, weights: str | Path | None = None, *, threads: int = 0) -> None:
        path = Path(weights) if weights is not None else default_weights_path()
        if not path.is_file():
            raise ModelError(f"transcription network weights not found at {path}")
        with _load_lock:
            self._session, self.meta = _load(path.resolve())
        self.path = path
        self.workers = int(threads) if threads > 0 else min(MAX_WORKERS, os.cpu_count() or 1)

    @staticmethod
    def available(weights: str | Path | None = None) -> bool:
        """True when the weights file and its checksum are present (not yet verified)."""
        path = Path(weights) if weights is not None else default_weights_path()
        return path.is_file() and path.with_name(path.name + ".sha256").is_file()

    def thresholds(self) -> dict[str, tuple[float, float]]:
        """(onset, frame) decoding thresholds chosen on validation data, from the metadata: one per
        family, and "pitch" for `pitch_posteriors`."""
        raw = json.loads(self.meta.get("thresholds", "{}") or "{}")
        names = [*(f.value for f in TIMBRE_FAMILIES), "pitch"]
        return {
            name: (float(raw.get(name, (0.5, 0.4))[0]), float(raw.get(name, (0.5, 0.4))[1])) for name in names
        }

    def run_input(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.floating[Any]]:
        """(3 * 9, n_frames, 88) outputs of one (N_CHANNELS, n_frames, 88) input: float32, or float16
        from a graph exported with its output cast (`training.transcriber.export.float16_output`)."""
        try:
            (out,) = self._session.run(None, {"features": x[None]})  # type: ignore[attr-defined]
        except Exception as exc:  # onnxruntime's errors are not typed
            raise ModelError(f"transcription network failed to run: {exc}") from exc
        out = np.asarray(out[0])
        return out if out.dtype == np.float16 else out.astype(np.float32, copy=False)

    def posteriors(
        self, samples: npt.NDArray[np.float32], post: Posteriors, spectrum: SongSpectrum | None = None
    ) -> FamilyPosteriors:
        """Family posteriors of (n,) mono 22.05 kHz audio whose basic-pitch posteriors are `post`;
        `spectrum` is the audio's `song_spectrum` when the caller has it (made here otherwise)."""
        n = post.n_frames
        # float16: a 10-minute song's three (n, 9, 88) arrays take 245 MB instead of 490 MB.
        onset = np.zeros((n, N_FAMILIES, N_PITCHES), np.float16)
        frame = np.zeros_like(onset)
        velocity = np.zeros_like(onset)
        if n == 0:
            return FamilyPosteriors(onset, frame, velocity)
        spectrum = spectrum if spectrum is not None else song_spectrum(samples, n)
        if spectrum.n_frames != n:
            raise ValueError(f"the spectrum has {spectrum.n_frames} frames, the posteriors {n}")

        def run_chunk(a: int) -> None:
            b = min(n, a + step)
            lo, hi = max(0, a - CONTEXT_FRAMES), min(n, b + CONTEXT_FRAMES)
            part = Posteriors(post.note[lo:hi], post.onset[lo:hi], post.contour[:0])
            x = network_input(part, spectrum.stack(lo, hi), spectrum.reference)
            out = self.run_input(x)[:, a - lo : b - lo]
            if out.dtype != np.float16:
                out = to_float16(out)
            onset[a:b] = out[:N_FAMILIES].transpose(1, 0, 2)
            frame[a:b] = out[N_FAMILIES : 2 * N_FAMILIES].transpose(1, 0, 2)
            velocity[a:b] = out[2 * N_FAMILIES :].transpose(1, 0, 2)

        # A frame's output does not depend on where the chunks are cut (the receptive field is
        # inside the context), so a short song is cut into one chunk per worker.
        step = min(CHUNK_FRAMES, max(MIN_CHUNK_FRAMES, -(-n // self.workers)))
        starts = range(0, n, step)
        if self.workers == 1 or len(starts) == 1:
            for a in starts:
                run_chunk(a)
        else:
            with ThreadPoolExecutor(min(self.workers, len(starts)), thread_name_prefix="network") as pool:
                list(pool.map(run_chunk, starts))
        return FamilyPosteriors(onset, frame, velocity)


@cache
def _float16_values() -> npt.NDArray[np.float32]:
    """The float32 value of every float16 bit pattern (65536,): a table lookup converts 4x faster
    than numpy's cast."""
    return np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)


def as_float32(x: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float32]:
    """`x` as a C-contiguous float32 array (the same values; float16 read through `_float16_values`)."""
    if x.dtype == np.float16:
        return _float16_values()[x.view(np.uint16)]
    return np.ascontiguousarray(x, dtype=np.float32)


_PITCH_BLOCK = 2048  # frames per block of `pitch_posteriors` (bounded float32 temporaries)


def pitch_posteriors(fp: FamilyPosteriors) -> FamilyPosteriors:
    """A one-family view: whoever plays each pitch (onset and frame summed over families, capped at 1;
    the loudest family's velocity), for stems whose family the caller knows."""
    n = fp.n_frames
    onset = np.empty((n, 1, N_PITCHES), np.float32)
    frame = np.empty_like(onset)
    velocity = np.empty_like(onset)
    for a in range(0, n, _PITCH_BLOCK):
        b = min(n, a + _PITCH_BLOCK)
        block = as_float32(fp.frame[a:b])
        np.minimum(as_float32(fp.onset[a:b]).sum(axis=1, keepdims=True), 1.0, out=onset[a:b])
        np.minimum(block.sum(axis=1, keepdims=True), 1.0, out=frame[a:b])
        best = block.argmax(axis=1)[:, None, :]
        velocity[a:b] = as_float32(np.take_along_axis(fp.velocity[a:b], best, axis=1))
    return FamilyPosteriors(onset, frame, velocity)


def note_family_shares(fp: FamilyPosteriors, notes: NoteArrays) -> npt.NDArray[np.float32]:
    """(n_notes, 9) how the network shares each note among the families: its frame posterior per
    family summed over the note's frames, normalised."""
    out = np.full((len(notes), N_FAMILIES), 1.0 / N_FAMILIES, np.float32)
    n = fp.n_frames
    for i, (s, e, p) in enumerate(
        zip(notes.start.tolist(), notes.end.tolist(), notes.pitch.tolist(), strict=True)
    ):
        a = min(max(s, 0), n - 1)
        b = min(max(e, a + 1), n)
        total = fp.frame[a:b, :, p - MIDI_OFFSET].sum(axis=0, dtype=np.float32)
        whole = total.sum()
        if whole > 0:
            out[i] = total / whole
    return out
    a = np.clip(notes.start.astype(np.int64), 0, fp.n_frames - 1)
    b = np.clip(notes.end.astype(np.int64), a + 1, fp.n_frames)
    lengths = b - a  # >= 1
    first = np.cumsum(lengths) - lengths  # each note's first row in `cells`
    rows = np.repeat(a - first, lengths) + np.arange(int(lengths.sum()))
    cells = as_float32(fp.frame[rows, :, np.repeat(notes.pitch.astype(np.int64) - MIDI_OFFSET, lengths)])
    totals = np.add.reduceat(cells, first, axis=0)  # (n_notes, 9), summed frame by frame
    sums = totals.sum(axis=1)
    heard = sums > 0
    out[heard] = totals[heard] / sums[heard, None]
    return out


def family_notes(
    fp: FamilyPosteriors,
    family: int,
    loudness: npt.NDArray[np.float32],
    options: DecodeOptions,
) -> NoteArrays:
    """One family's notes, decoded polyphonically; velocities are the network's at each onset."""
    post = Posteriors(
        as_float32(fp.frame[:, family, :]),
        as_float32(fp.onset[:, family, :]),
        np.zeros((fp.n_frames, 0), np.float32),
    )
    notes = decode_polyphonic(post, loudness, options)
    if len(notes) == 0:
        return notes
    rows = np.clip(notes.start, 0, fp.n_frames - 1)
    vel = fp.velocity[rows, family, notes.pitch - MIDI_OFFSET]
    return NoteArrays(notes.start, notes.end, notes.pitch, np.clip(vel, 0.05, 1.0).astype(np.float32))


def note_families(
    shares: npt.NDArray[np.float32], heard: npt.NDArray[np.float32] | None, *, blend: float
) -> npt.NDArray[np.float32]:
    """(n_notes, 9) each note's family probabilities in a mix: a geometric blend of the network's
    `shares` (`note_family_shares`) and the timbre classifier's `heard` (None without one), `blend`
    weighing the network."""
    logp = np.log(shares.astype(np.float64) + 1e-4)
    if heard is not None and blend < 1.0:
        logp = blend * logp + (1.0 - blend) * np.log(heard.astype(np.float64) + 1e-4)
    probs = np.exp(logp - logp.max(axis=1, keepdims=True, initial=0.0))
    probs /= np.maximum(probs.sum(axis=1, keepdims=True), 1e-12)
    return probs.astype(np.float32)
