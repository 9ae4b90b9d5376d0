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
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.fft

from stemscribe.errors import ModelError
from stemscribe.transcription.notes import DecodeOptions, NoteArrays, decode_polyphonic
from stemscribe.transcription.pitch_model import (
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


def spectrum_magnitudes(
    samples: npt.NDArray[np.float32], frames: npt.NDArray[np.int64], *, fundamentals_only: bool = False
) -> npt.NDArray[np.float32]:
    """(len(frames), len(HARMONICS), 88) spectrum magnitudes at the harmonics of every pitch.

    Frame f is a Hann-windowed FFT centred on sample `frame_samples(f)` (basic-pitch's grid, which is
    not uniform); outside the audio is silence. `fundamentals_only` gives (len(frames), 1, 88) at
    harmonic 1.
    """
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    half = N_FFT // 2
    padded = np.concatenate([np.zeros(half, np.float32), x, np.zeros(N_FFT, np.float32)])
    centres = np.minimum(frame_samples(frames).astype(np.int64), x.shape[0])
    view = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)
    window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)
    cols = slice(N_PITCHES, 2 * N_PITCHES) if fundamentals_only else slice(None)
    lower, frac, outside = _LOWER[cols], _FRAC[cols], _OUTSIDE[cols]
    out = np.empty((len(frames), lower.shape[0]), np.float32)
    for c in range(0, len(frames), _FFT_CHUNK):
        block = view[centres[c : c + _FFT_CHUNK]] * window
        mags = np.abs(scipy.fft.rfft(block, axis=1)).astype(np.float32)
        read = mags[:, lower] * (1.0 - frac) + mags[:, lower + 1] * frac
        read[:, outside] = 0.0
        out[c : c + _FFT_CHUNK] = read
    return out.reshape(len(frames), -1, N_PITCHES)


def song_reference(samples: npt.NDArray[np.float32], n_frames: int) -> float:
    """The log level a song's (or training clip's) features are measured against: a high percentile
    of the fundamentals' magnitudes over all its frames."""
    fundamental = spectrum_magnitudes(samples, np.arange(n_frames), fundamentals_only=True)
    if fundamental.size == 0:
        return float(np.log(_EPS))
    return float(np.log(np.percentile(fundamental, 99.5) + _EPS))


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
def _load(path: Path, threads: int) -> tuple[object, dict[str, str]]:
    session, meta = open_session(path, threads, "transcription network")
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
    """The transcription network loaded once; `posteriors` is safe to call from threads."""

    def __init__(self, weights: str | Path | None = None, *, threads: int = 0) -> None:
        path = Path(weights) if weights is not None else default_weights_path()
        if not path.is_file():
            raise ModelError(f"transcription network weights not found at {path}")
        with _load_lock:
            self._session, self.meta = _load(path.resolve(), int(threads))
        self.path = path

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

    def run_input(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """(3 * 9, n_frames, 88) outputs of one (N_CHANNELS, n_frames, 88) input."""
        try:
            (out,) = self._session.run(None, {"features": x[None]})  # type: ignore[attr-defined]
        except Exception as exc:  # onnxruntime's errors are not typed
            raise ModelError(f"transcription network failed to run: {exc}") from exc
        return np.asarray(out[0], dtype=np.float32)

    def posteriors(self, samples: npt.NDArray[np.float32], post: Posteriors) -> FamilyPosteriors:
        """Family posteriors of (n,) mono 22.05 kHz audio whose basic-pitch posteriors are `post`."""
        n = post.n_frames
        # float16: a 10-minute song's three (n, 9, 88) arrays take 245 MB instead of 490 MB.
        onset = np.zeros((n, N_FAMILIES, N_PITCHES), np.float16)
        frame = np.zeros_like(onset)
        velocity = np.zeros_like(onset)
        if n == 0:
            return FamilyPosteriors(onset, frame, velocity)
        # One reference level for the whole song, as for a training clip.
        reference = song_reference(samples, n)
        for a in range(0, n, CHUNK_FRAMES):
            b = min(n, a + CHUNK_FRAMES)
            lo, hi = max(0, a - CONTEXT_FRAMES), min(n, b + CONTEXT_FRAMES)
            part = Posteriors(post.note[lo:hi], post.onset[lo:hi], post.contour[:0])
            mags = spectrum_magnitudes(samples, np.arange(lo, hi))
            out = self.run_input(network_input(part, mags, reference))[:, a - lo : b - lo]
            onset[a:b] = out[:N_FAMILIES].transpose(1, 0, 2)
            frame[a:b] = out[N_FAMILIES : 2 * N_FAMILIES].transpose(1, 0, 2)
            velocity[a:b] = out[2 * N_FAMILIES :].transpose(1, 0, 2)
        return FamilyPosteriors(onset, frame, velocity)


def pitch_posteriors(fp: FamilyPosteriors) -> FamilyPosteriors:
    """A one-family view: whoever plays each pitch (onset and frame summed over families, capped at 1;
    the loudest family's velocity), for stems whose family the caller knows."""
    onset = np.minimum(fp.onset.sum(axis=1, keepdims=True, dtype=np.float32), 1.0)
    frame = np.minimum(fp.frame.sum(axis=1, keepdims=True, dtype=np.float32), 1.0)
    best = fp.frame.argmax(axis=1)[:, None, :]
    velocity = np.take_along_axis(fp.velocity, best, axis=1).astype(np.float32)
    return FamilyPosteriors(onset.astype(np.float32), frame.astype(np.float32), velocity)


def note_family_shares(fp: FamilyPosteriors, notes: NoteArrays) -> npt.NDArray[np.float32]:
    """(n_notes, 9) how the network shares each note among the families: its frame posterior per
    family summed over the note's frames, normalised."""
    out = np.full((len(notes), N_FAMILIES), 1.0 / N_FAMILIES, np.float32)
    for i, (s, e, p) in enumerate(zip(notes.start, notes.end, notes.pitch, strict=True)):
        a = int(np.clip(s, 0, fp.n_frames - 1))
        b = int(np.clip(e, a + 1, fp.n_frames))
        total = fp.frame[a:b, :, int(p) - MIDI_OFFSET].sum(axis=0, dtype=np.float32)
        if total.sum() > 0:
            out[i] = total / total.sum()
    return out


def family_notes(
    fp: FamilyPosteriors,
    family: int,
    loudness: npt.NDArray[np.float32],
    options: DecodeOptions,
) -> NoteArrays:
    """One family's notes, decoded polyphonically; velocities are the network's at each onset."""
    post = Posteriors(
        np.ascontiguousarray(fp.frame[:, family, :], np.float32),
        np.ascontiguousarray(fp.onset[:, family, :], np.float32),
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
