"""Instrument families of decoded notes: pitch-normalised timbre features and a small ONNX network.

The pitch model says which notes sound, not who plays them. For each note this module reads, from
one short-time spectrum of the mix (n_fft 2048, hop 256 at 22.05 kHz), the log magnitudes at the
note's harmonics (and between them) in `FRAME_OFFSETS` frames around its onset, relative to the
note's own level, plus how loud the whole frame is, the pitch and the duration. A small MLP trained
by `training/timbre` on SoundFont mini-mixes turns that vector into probabilities over
`TIMBRE_FAMILIES`. Everything is batched: one FFT over the frames the notes need, one gather.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
import scipy.fft

from stemscribe.errors import ModelError
from stemscribe.result import NoteEvent
from stemscribe.stems import Family
from stemscribe.transcription.weights import open_session, shipped_weights

SAMPLE_RATE = 22050
N_FFT = 2048
HOP = 256
FEATURE_VERSION = 1
WEIGHTS_NAME = "timbre.onnx"

TIMBRE_FAMILIES: tuple[Family, ...] = (
    Family.BASS,
    Family.PIANO,
    Family.GUITAR,
    Family.KEYS,
    Family.STRINGS,
    Family.BRASS,
    Family.WINDS,
    Family.SYNTH,
    Family.VOCALS,
)

# Frames read per note, relative to its onset frame (~11.6 ms each): just before, attack, sustain, decay.
FRAME_OFFSETS = np.array([-3, 0, 1, 2, 3, 5, 7, 10, 14, 20, 28, 40], dtype=np.int64)
# Multiples of f0 read per frame: the harmonics and the gaps between the lower ones (noise, other notes).
PARTIALS = np.array(
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0.5, 1.5, 2.5, 3.5, 4.5, 5.5], dtype=np.float32
)
N_SCALARS = 4
N_FEATURES = len(FRAME_OFFSETS) * (len(PARTIALS) + 1) + N_SCALARS
_REF_FRAMES = slice(1, 6)  # frames 0..3, 5 after the onset set the note's reference level
_REF_PARTIALS = slice(0, 4)
_FLOOR = -8.0  # natural-log range kept below the reference (about 70 dB)
_CEIL = 4.0
_EPS = 1e-7
_CHUNK = 2048  # frames per FFT batch
_NOTE_CHUNK = 1024  # notes whose features are computed together (at most 12 k frames, 50 MB of spectra)


def _f0(pitch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return (440.0 * 2.0 ** ((pitch - 69.0) / 12.0)).astype(np.float32)


def _frame_magnitudes(x: npt.NDArray[np.float32], frames: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
    """(len(frames), N_FFT // 2 + 1) Hann-windowed magnitudes; frame i is centred on sample i * HOP.

    Samples outside the signal count as silence.
    """
    window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)
    half = N_FFT // 2
    lo = int(frames.min()) * HOP - half
    hi = int(frames.max()) * HOP + half
    left = max(0, -lo)
    padded = np.concatenate([np.zeros(left, np.float32), x, np.zeros(max(0, hi - x.shape[0]), np.float32)])
    first = lo + left  # sample of `padded` where frame frames.min() begins
    view = np.lib.stride_tricks.as_strided(
        padded[first:],
        shape=((padded.shape[0] - first - N_FFT) // HOP + 1, N_FFT),
        strides=(HOP * padded.strides[0], padded.strides[0]),
        writeable=False,
    )
    rows = frames - frames.min()
    out = np.empty((len(frames), half + 1), np.float32)
    for c in range(0, len(frames), _CHUNK):
        block = view[rows[c : c + _CHUNK]] * window
        out[c : c + _CHUNK] = np.abs(scipy.fft.rfft(block, axis=1, workers=2))
    return out


def note_features(
    samples: npt.NDArray[np.float32],
    pitch: npt.ArrayLike,
    start: npt.ArrayLike,
    end: npt.ArrayLike,
) -> npt.NDArray[np.float32]:
    """(n_notes, N_FEATURES) timbre features of notes given as parallel arrays (MIDI pitch, seconds).

    `samples` is (n,) mono float32 at SAMPLE_RATE.
    """
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"timbre features want (n,) mono samples, got shape {x.shape}")
    p = np.asarray(pitch, dtype=np.float32).reshape(-1)
    s = np.asarray(start, dtype=np.float64).reshape(-1)
    e = np.asarray(end, dtype=np.float64).reshape(-1)
    if not (len(p) == len(s) == len(e)):
        raise ValueError("pitch, start and end must have the same length")
    n = len(p)
    if n == 0:
        return np.zeros((0, N_FEATURES), np.float32)
    if n > _NOTE_CHUNK:  # bound the spectra held at once: neighbouring notes in time share frames
        order = np.argsort(s, kind="stable")
        out = np.empty((n, N_FEATURES), np.float32)
        for c in range(0, n, _NOTE_CHUNK):
            idx = order[c : c + _NOTE_CHUNK]
            out[idx] = _features(x, p[idx], s[idx], e[idx])
        return out
    return _features(x, p, s, e)


def _features(
    x: npt.NDArray[np.float32],
    p: npt.NDArray[np.float32],
    s: npt.NDArray[np.float64],
    e: npt.NDArray[np.float64],
) -> npt.NDArray[np.float32]:
    n = len(p)
    onset = np.round(s * SAMPLE_RATE / HOP).astype(np.int64)
    wanted = onset[:, None] + FRAME_OFFSETS[None, :]  # (n, F)
    frames, where = np.unique(wanted, return_inverse=True)
    where = where.reshape(wanted.shape)
    mags = _frame_magnitudes(x, frames)  # (U, B)
    level = np.log(mags.mean(axis=1) + _EPS)  # (U,)

    n_bins = mags.shape[1]
    pos = _f0(p)[:, None] * PARTIALS[None, :] * (N_FFT / SAMPLE_RATE)  # (n, P) fractional bins
    above = pos >= n_bins - 1
    pos = np.minimum(pos, n_bins - 1.001)
    lower = np.floor(pos).astype(np.int64)
    frac = (pos - lower).astype(np.float32)
    # Four bins around each partial; each of the two nearest takes the max of itself and its
    # neighbours, so a slightly detuned or vibrato partial still reads at full strength.
    rows = where[:, :, None, None]  # (n, F, 1, 1)
    cols = np.clip(lower[:, None, :, None] + np.arange(-1, 3)[None, None, None, :], 0, n_bins - 1)
    near = mags[rows, cols]  # (n, F, P, 4)
    a = near[..., :3].max(axis=-1)
    b = near[..., 1:].max(axis=-1)
    mag = a + (b - a) * frac[:, None, :]  # (n, F, P)
    logmag = np.log(mag + _EPS)
    logmag[np.broadcast_to(above[:, None, :], logmag.shape)] = -np.inf

    ref = logmag[:, _REF_FRAMES, _REF_PARTIALS].max(axis=(1, 2))  # (n,)
    ref = np.where(np.isfinite(ref), ref, np.log(_EPS))
    harm = np.clip(logmag - ref[:, None, None], _FLOOR, _CEIL)
    frame_level = np.clip(level[where] - ref[:, None], _FLOOR, _CEIL)  # (n, F)

    duration = np.maximum(e - s, 1e-3)
    scalars = np.stack(
        [
            (p - 60.0) / 24.0,
            np.log(duration).astype(np.float32),
            np.clip((ref - np.log(_EPS)) / 10.0, 0.0, 3.0).astype(np.float32),
            (np.minimum(duration, 4.0) / 4.0).astype(np.float32),
        ],
        axis=1,
    )
    feats = np.concatenate([harm.reshape(n, -1), frame_level, scalars], axis=1)
    return np.ascontiguousarray(feats, dtype=np.float32)


def default_weights_path() -> Path:
    """The weights shipped inside the package."""
    return shipped_weights(WEIGHTS_NAME)


_load_lock = threading.Lock()


@lru_cache(maxsize=4)
def _load(path: Path, threads: int) -> object:
    session, meta = open_session(path, threads, "timbre model")
    families = json.loads(meta.get("families", "null") or "null")
    if families != [f.value for f in TIMBRE_FAMILIES]:
        raise ModelError(
            f"timbre model {path} predicts {families}, expected {[f.value for f in TIMBRE_FAMILIES]}"
        )
    check_features(meta, path, "timbre model")
    return session


def check_features(meta: dict[str, str], path: Path, what: str) -> None:
    """Raise a ModelError unless weights' metadata `meta` says they read this stemscribe's features."""
    if (
        int(meta.get("feature_version", "-1")) != FEATURE_VERSION
        or int(meta.get("n_features", "-1")) != N_FEATURES
    ):
        raise ModelError(f"{what} {path} was trained on other features than this stemscribe computes")


class NoteFeatureModel:
    """An ONNX model over notes' timbre features (`note_features`), `WHAT` in its errors: weights load
    once per file (`LOAD`, cached) and are shared; running is thread-safe."""

    WHAT = "timbre model"
    WEIGHTS_NAME = WEIGHTS_NAME  # shipped under this name (`weights.shipped_weights`)
    LOAD: Callable[[Path, int], object] = staticmethod(_load)

    def __init__(self, weights: str | Path | None = None, *, threads: int = 0) -> None:
        path = Path(weights) if weights is not None else shipped_weights(self.WEIGHTS_NAME)
        if not path.is_file():
            raise ModelError(f"{self.WHAT} weights not found at {path}")
        with _load_lock:
            self._session = self.LOAD(path.resolve(), int(threads))

    @classmethod
    def available(cls, weights: str | Path | None = None) -> bool:
        """True when the weights file and its checksum are present (not yet verified)."""
        path = Path(weights) if weights is not None else shipped_weights(cls.WEIGHTS_NAME)
        return path.is_file() and path.with_name(path.name + ".sha256").is_file()

    def _run(self, features: npt.NDArray[np.float32], width: int) -> npt.NDArray[np.float32]:
        """(n, width) output of (n, N_FEATURES) features."""
        if features.shape[0] == 0:
            return np.zeros((0, width), np.float32)
        try:
            (out,) = self._session.run(None, {"features": features})  # type: ignore[attr-defined]
        except Exception as exc:  # onnxruntime's errors are not typed
            raise ModelError(f"{self.WHAT} failed to run: {exc}") from exc
        return np.asarray(out, dtype=np.float32)


def notes_features(samples: npt.NDArray[np.float32], notes: Sequence[NoteEvent]) -> npt.NDArray[np.float32]:
    """(len(notes), N_FEATURES) `note_features` of `notes` in (n,) mono 22.05 kHz audio."""
    pitch = np.fromiter((n.pitch for n in notes), np.float32, len(notes))
    start = np.fromiter((n.start for n in notes), np.float64, len(notes))
    end = np.fromiter((n.end for n in notes), np.float64, len(notes))
    return note_features(samples, pitch, start, end)


class FamilyClassifier(NoteFeatureModel):
    """Says which instrument family plays each decoded note of a mix."""

    def classify_features(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """(n, len(TIMBRE_FAMILIES)) probabilities of (n, N_FEATURES) features."""
        return self._run(features, len(TIMBRE_FAMILIES))

    def classify(
        self, samples: npt.NDArray[np.float32], notes: Sequence[NoteEvent]
    ) -> npt.NDArray[np.float32]:
        """(len(notes), len(TIMBRE_FAMILIES)) family probabilities of `notes` in (n,) mono 22.05 kHz audio."""
        return self.classify_features(notes_features(samples, notes))
