"""stemscribe's own drum transcription network, run with onnxruntime (no torch at inference).

The network is trained by `training/drums` on synthetic drums (MMA grooves and generated patterns
rendered through several SoundFont kits, with accompaniment mixed under them). Its input is a log-mel
spectrogram computed here in numpy (22.05 kHz, hop 220 samples: ~100 frames/s, 80 bands); its outputs
are, per frame and per class of `DRUM_CLASSES` (the kit and the auxiliary percussion of
`DRUM_CLASS_TABLE`), an onset probability and a velocity. Peak picking with per-class thresholds
(stored in the ONNX file's metadata beside the classes' GM keys) turns them into General MIDI drum
notes, each class written as its own key.

The thresholds depend on what the network hears (`DrumInput`): "thresholds" are a drum stem's,
"thresholds_mix" those of a mix's percussive part (`training/drums/tune_thresholds.py` tunes both).
Weights without "thresholds_mix" decode mixes with the stems' thresholds.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
import scipy.fft

from stemscribe.errors import InvalidOptionError, ModelError
from stemscribe.result import NoteEvent
from stemscribe.transcription.drums import DRUM_CLASSES, DRUM_INPUTS, DrumInput
from stemscribe.transcription.weights import open_session, shipped_weights

SAMPLE_RATE = 22050
HOP = 220
N_FFT = 1024
N_MELS = 80
F_MIN = 30.0
F_MAX = 11025.0
FPS = SAMPLE_RATE / HOP  # 100.23 frames per second
N_CLASSES = len(DRUM_CLASSES)
NOTE_SECONDS = 0.1  # drum notes are written this long (GM drums ignore note length)
DEFAULT_THRESHOLD = 0.5
CHUNK_FRAMES = 3000  # the network sees at most this many frames at once (plus context)
CONTEXT_FRAMES = 200  # frames of context on each side of a chunk (the GRU forgets within ~1 s)
WEIGHTS_NAME = "drums.onnx"
THRESHOLD_KEYS: dict[DrumInput, str] = {"stem": "thresholds", "mix": "thresholds_mix"}
"""Input kind -> the ONNX metadata key of its per-class thresholds."""


@lru_cache(maxsize=1)
def mel_filterbank() -> npt.NDArray[np.float32]:
    """(N_FFT // 2 + 1, N_MELS) triangular filters on the HTK mel scale, each of unit area."""

    def hz_to_mel(f: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)

    def mel_to_hz(m: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)

    freqs = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(F_MIN), hz_to_mel(F_MAX), N_MELS + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lower) / (centre - lower)
    falling = (upper - freqs[None, :]) / (upper - centre)
    fb = np.maximum(0.0, np.minimum(rising, falling))
    # Narrow low bands can fall between FFT bins: give each at least its nearest bin.
    for i in range(N_MELS):
        if fb[i].sum() == 0.0:
            fb[i, int(np.argmin(np.abs(freqs - centre[i, 0])))] = 1.0
    fb /= fb.sum(axis=1, keepdims=True)
    return np.ascontiguousarray(fb.T.astype(np.float32))


def n_frames(n_samples: int) -> int:
    """Frames `log_mel` gives for `n_samples`; frame i is centred on sample i * HOP."""
    return 1 + n_samples // HOP


def log_mel(samples: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """(n_frames, N_MELS) natural-log mel power of (n,) mono audio at SAMPLE_RATE."""
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"log_mel wants (n,) mono samples, got shape {x.shape}")
    total = n_frames(x.shape[0])
    padded = np.concatenate([np.zeros(N_FFT // 2, np.float32), x, np.zeros(N_FFT // 2 + HOP, np.float32)])
    window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)
    fb = mel_filterbank()
    out = np.empty((total, N_MELS), np.float32)
    step = 2048
    for start in range(0, total, step):
        stop = min(total, start + step)
        frames = np.lib.stride_tricks.as_strided(
            padded[start * HOP :],
            shape=(stop - start, N_FFT),
            strides=(HOP * padded.strides[0], padded.strides[0]),
            writeable=False,
        )
        spec = scipy.fft.rfft(frames * window, axis=1)  # complex64 from float32, unlike numpy's
        power = np.square(spec.real) + np.square(spec.imag)
        out[start:stop] = np.log(power @ fb + np.float32(1e-8))
    return out


def pick_peaks(
    activation: npt.NDArray[np.float32], threshold: float, *, min_gap: int = 2
) -> npt.NDArray[np.float64]:
    """Sub-frame positions of the local maxima of (n_frames,) `activation` at or above `threshold`.

    A peak must be the largest value within `min_gap` frames on either side (the first of equal
    values wins); its position is refined by a parabola through it and its two neighbours.
    """
    a = np.asarray(activation, dtype=np.float32)
    n = a.shape[0]
    if n == 0:
        return np.zeros(0)
    padded = np.concatenate([np.full(min_gap, -np.inf, np.float32), a, np.full(min_gap, -np.inf, np.float32)])
    is_peak = a >= threshold
    for k in range(1, min_gap + 1):
        is_peak &= a > padded[min_gap - k : min_gap - k + n]  # strictly above earlier frames
        is_peak &= a >= padded[min_gap + k : min_gap + k + n]  # at least later frames
    idx = np.flatnonzero(is_peak)
    left = a[np.maximum(idx - 1, 0)].astype(np.float64)
    mid = a[idx].astype(np.float64)
    right = a[np.minimum(idx + 1, n - 1)].astype(np.float64)
    denom = left - 2 * mid + right
    safe = np.where(np.abs(denom) > 1e-9, denom, -1.0)
    offset = np.where(np.abs(denom) > 1e-9, 0.5 * (left - right) / safe, 0.0)
    return idx + np.clip(offset, -0.5, 0.5)


def default_weights_path() -> Path:
    """The weights shipped inside the package (they may be absent in a source checkout)."""
    return shipped_weights(WEIGHTS_NAME)


def weights_available(path: Path | None = None) -> bool:
    p = path or default_weights_path()
    return p.is_file() and p.with_name(p.name + ".sha256").is_file()


@dataclass(frozen=True, slots=True)
class _Loaded:
    session: object  # onnxruntime.InferenceSession
    thresholds: dict[DrumInput, tuple[float, ...]]  # per input kind, one per class
    classes: tuple[int, ...]  # the GM key each output column is written as


_load_lock = threading.Lock()


@lru_cache(maxsize=4)
def _load(path: Path, threads: int) -> _Loaded:
    session, meta = open_session(path, threads, "drum model")
    classes = tuple(int(k) for k in json.loads(meta.get("classes", "null")) or DRUM_CLASSES)
    unknown = sorted(set(classes) - set(DRUM_CLASSES))
    if unknown or len(set(classes)) != len(classes):
        raise ModelError(
            f"drum model {path} names classes {list(classes)}: not distinct classes of the table"
        )
    stem = tuple(
        float(t)
        for t in json.loads(meta.get(THRESHOLD_KEYS["stem"], "null")) or [DEFAULT_THRESHOLD] * len(classes)
    )
    mix = tuple(float(t) for t in json.loads(meta.get(THRESHOLD_KEYS["mix"], "null")) or stem)
    for key, values in ((THRESHOLD_KEYS["stem"], stem), (THRESHOLD_KEYS["mix"], mix)):
        if len(values) != len(classes):
            raise ModelError(f"drum model {path} has {len(values)} {key} for {len(classes)} classes")
    return _Loaded(session, {"stem": stem, "mix": mix}, classes)


class DrumModel:
    """The "model" drum backend: the ONNX network plus peak picking.

    Loading is done once per weights file and shared; `transcribe` is thread-safe. `thresholds`
    replaces the weights' per-class thresholds for every input kind, `mix_thresholds` those of mixes
    alone (given both, stems take `thresholds`).
    """

    name = "model"

    def __init__(
        self,
        weights: str | Path | None = None,
        *,
        threads: int = 0,
        thresholds: tuple[float, ...] | None = None,
        mix_thresholds: tuple[float, ...] | None = None,
    ) -> None:
        path = Path(weights) if weights is not None else default_weights_path()
        if not path.is_file():
            raise ModelError(f"drum model weights not found at {path}")
        with _load_lock:
            loaded = _load(path.resolve(), int(threads))
        self._session = loaded.session
        self.classes: tuple[int, ...] = loaded.classes
        given = None if thresholds is None else tuple(thresholds)
        self.kind_thresholds: dict[DrumInput, tuple[float, ...]] = {
            kind: given if given is not None else loaded.thresholds[kind] for kind in DRUM_INPUTS
        }
        if mix_thresholds is not None:
            self.kind_thresholds["mix"] = tuple(mix_thresholds)
        for values in self.kind_thresholds.values():
            if len(values) != len(self.classes):
                raise ModelError(f"need {len(self.classes)} thresholds, got {len(values)}")

    @property
    def thresholds(self) -> tuple[float, ...]:
        """The drum stems' per-class thresholds (`kind_thresholds["mix"]` are the mixes')."""
        return self.kind_thresholds["stem"]

    def thresholds_for(self, kind: DrumInput) -> tuple[float, ...]:
        """Per-class peak thresholds for input of `kind`."""
        if kind not in DRUM_INPUTS:
            raise InvalidOptionError(f"unknown drum input {kind!r}; choose one of: {', '.join(DRUM_INPUTS)}")
        return self.kind_thresholds[kind]

    def activations(
        self, samples: npt.NDArray[np.float32], sr: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Onset probabilities and velocities, each (n_frames, n_classes), of (n,) mono audio; column c
        is class `self.classes[c]`."""
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"drum transcription wants (n,) mono samples, got shape {x.shape}")
        if sr != SAMPLE_RATE:
            from stemscribe.audio import resample

            x = resample(x, sr, SAMPLE_RATE)
        mel = log_mel(x)
        return self.activations_from_mel(mel)

    def activations_from_mel(
        self, mel: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Network outputs for a (n_frames, N_MELS) log-mel, run in overlapping chunks."""
        total = mel.shape[0]
        onset = np.zeros((total, len(self.classes)), np.float32)
        velocity = np.zeros((total, len(self.classes)), np.float32)
        for start in range(0, total, CHUNK_FRAMES):
            stop = min(total, start + CHUNK_FRAMES)
            lo, hi = max(0, start - CONTEXT_FRAMES), min(total, stop + CONTEXT_FRAMES)
            try:
                o, v = self._session.run(None, {"mel": mel[None, lo:hi]})  # type: ignore[attr-defined]
            except Exception as exc:  # onnxruntime's errors are not typed
                raise ModelError(f"drum model failed to run: {exc}") from exc
            onset[start:stop] = o[0, start - lo : stop - lo]
            velocity[start:stop] = v[0, start - lo : stop - lo]
        return onset, velocity

    def notes_from_activations(
        self,
        onset: npt.NDArray[np.float32],
        velocity: npt.NDArray[np.float32],
        *,
        kind: DrumInput = "stem",
    ) -> list[NoteEvent]:
        """General MIDI drum notes from (n_frames, n_classes) outputs, sorted by start, peaks picked
        with the thresholds of `kind`."""
        thresholds = self.thresholds_for(kind)
        notes: list[NoteEvent] = []
        for c, pitch in enumerate(self.classes):
            for pos in pick_peaks(onset[:, c], thresholds[c]):
                frame = int(round(pos))
                vel = float(np.clip(velocity[frame, c], 1.0 / 127, 1.0))
                start = max(0.0, float(pos) / FPS)
                notes.append(NoteEvent(pitch, start, start + NOTE_SECONDS, vel))
        notes.sort(key=lambda n: (n.start, n.pitch))
        return notes

    def transcribe(
        self, samples: npt.NDArray[np.float32], sr: int, *, kind: DrumInput = "stem"
    ) -> list[NoteEvent]:
        """Drum notes of (n,) mono audio at `sr`, pitches from DRUM_CLASSES, sorted by start; `kind`
        picks the thresholds (a drum stem's, or a mix's percussive part's)."""
        self.thresholds_for(kind)  # an unknown kind fails before the network runs
        onset, velocity = self.activations(samples, sr)
        return self.notes_from_activations(onset, velocity, kind=kind)
