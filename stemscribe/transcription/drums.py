"""Drum transcription: the `DrumTranscriber` seam, the table of backends, and the signal-processing one."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast, runtime_checkable

import numpy as np
import numpy.typing as npt

from stemscribe.errors import InvalidOptionError
from stemscribe.result import NoteEvent

# General MIDI drum keys of the kit classes.
KICK, SNARE, CLOSED_HAT, OPEN_HAT, LOW_TOM, MID_TOM, HIGH_TOM, CRASH, RIDE = (
    36,
    38,
    42,
    46,
    45,
    47,
    50,
    49,
    51,
)


@dataclass(frozen=True, slots=True)
class DrumClass:
    """One class the drum backends predict: written back as `key`, scored as any of `members`."""

    key: int
    name: str
    members: tuple[int, ...]  # General MIDI percussion keys 35..81 folded onto this class
    kit: bool  # one of the nine drum-kit classes (the rest is auxiliary percussion)
    extra: tuple[int, ...] = ()  # GS / GM2 keys outside 35..81 that sound like this class


# The class table: every General MIDI percussion key 35..81 in exactly one class. Training labels,
# the model's outputs (written back as each class's key) and the benchmark's scoring all read it.
DRUM_CLASS_TABLE: tuple[DrumClass, ...] = (
    DrumClass(KICK, "kick", (35, 36), True),
    DrumClass(SNARE, "snare", (37, 38, 39, 40), True),  # side stick, snare, hand clap, electric snare
    DrumClass(CLOSED_HAT, "closed hat", (42, 44), True),  # the pedal hat's short "chick" is closed
    DrumClass(OPEN_HAT, "open hat", (46,), True),
    DrumClass(LOW_TOM, "low tom", (41, 43, 45), True),
    DrumClass(MID_TOM, "mid tom", (47, 48), True),
    DrumClass(HIGH_TOM, "high tom", (50,), True),
    DrumClass(CRASH, "crash", (49, 52, 55, 57), True),  # crash 1 and 2, china, splash
    DrumClass(RIDE, "ride", (51, 53, 59), True),  # ride 1 and 2, ride bell
    DrumClass(54, "tambourine", (54,), False, (83,)),  # GS jingle bell
    DrumClass(56, "cowbell", (56,), False),
    DrumClass(58, "vibraslap", (58,), False),
    DrumClass(63, "high conga/bongo", (60, 62, 63), False),  # high bongo, mute and open high conga
    DrumClass(64, "low conga/bongo", (61, 64), False),  # low bongo, low conga
    DrumClass(65, "timbales", (65, 66), False),
    DrumClass(67, "agogo", (67, 68), False),
    DrumClass(70, "shaker", (69, 70), False, (82,)),  # cabasa, maracas; GS shaker
    DrumClass(71, "whistle", (71, 72), False),
    DrumClass(73, "guiro", (73, 74), False),
    DrumClass(75, "claves/woodblock", (75, 76, 77), False, (85,)),  # GS castanets
    DrumClass(78, "cuica", (78, 79), False),
    DrumClass(81, "triangle", (80, 81), False),
)
DRUM_CLASSES: tuple[int, ...] = tuple(c.key for c in DRUM_CLASS_TABLE)
KIT_CLASSES: tuple[int, ...] = tuple(c.key for c in DRUM_CLASS_TABLE if c.kit)
DRUM_CLASS_NAMES: dict[int, str] = {c.key: c.name for c in DRUM_CLASS_TABLE}
GM_TO_CLASS: dict[int, int] = {k: c.key for c in DRUM_CLASS_TABLE for k in c.members}
"""Every General MIDI percussion key 35..81 -> the key of its class."""
KEY_TO_CLASS: dict[int, int] = {**GM_TO_CLASS, **{k: c.key for c in DRUM_CLASS_TABLE for k in c.extra}}
"""GM_TO_CLASS plus the GS / GM2 keys outside 35..81 that sound like a class (82 shaker, ...)."""


def drum_class_of(key: int) -> int | None:
    """The class (its GM key) a percussion key is labelled and scored as; None for keys of no class."""
    return KEY_TO_CLASS.get(key)


DrumInput = Literal["stem", "mix"]
"""What a drum backend hears: a drum stem ("stem"), or the percussive part of a whole mix ("mix")."""
DRUM_INPUTS: tuple[DrumInput, ...] = ("stem", "mix")


@runtime_checkable
class DrumTranscriber(Protocol):
    """Turns percussive audio into General MIDI drum notes."""

    name: str

    def transcribe(
        self, samples: npt.NDArray[np.float32], sr: int, *, kind: DrumInput = "stem"
    ) -> list[NoteEvent]:
        """Drum notes of (n,) mono audio at `sr`, pitches from DRUM_CLASSES, sorted by start; `kind` says
        what the audio is (a backend may decode the two differently)."""
        ...


DRUM_BACKENDS: dict[str, str] = {
    "dsp": "stemscribe.transcription.drums:SpectralDrums",
    "model": "stemscribe.transcription.drum_model:DrumModel",
}
"""Drum backend name -> "module:Class", imported only when that backend is built."""
_AVAILABLE: dict[str, str] = {"model": "stemscribe.transcription.drum_model:weights_available"}
"""Backends that can be missing here -> "module:function" saying whether they can run."""


def _load(path: str) -> Any:
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


def drum_backend_names() -> list[str]:
    """The drum backends that can run here ("model" only when its shipped weights are present)."""
    return sorted(name for name in DRUM_BACKENDS if name not in _AVAILABLE or _load(_AVAILABLE[name])())


def get_drum_backend(name: str = "auto") -> DrumTranscriber:
    """Build the drum backend `name`; "auto" picks the best one available."""
    names = drum_backend_names()
    if name == "auto":
        name = "model" if "model" in names else "dsp"
    if name not in names:
        raise InvalidOptionError(f"unknown drum backend {name!r}; known: {', '.join(names)}")
    backend: DrumTranscriber = _load(DRUM_BACKENDS[name])()
    return backend


# --- the signal-processing backend ------------------------------------------------------------

_DSP_SR = 22050
_DSP_HOP = 128  # 5.8 ms frames
_DSP_NFFT = 1024


def _band_flux(
    logmag: npt.NDArray[np.float32], freqs: npt.NDArray[np.floating[Any]], lo: float, hi: float
) -> npt.NDArray[np.float32]:
    """(n_frames,) half-wave-rectified spectral flux of the bins between lo and hi Hz."""
    band = logmag[(freqs >= lo) & (freqs < hi)]
    diff = np.diff(band, axis=1, prepend=band[:, :1])
    return np.maximum(diff, 0.0).mean(axis=0).astype(np.float32)


def _band_features(
    x: npt.NDArray[np.float32], block_frames: int = 8192
) -> dict[str, npt.NDArray[np.float32]]:
    """Per-frame band fluxes and energies of 22050 Hz audio, computed block by block (flat memory)."""
    from stemscribe.audio import magnitude_blocks

    freqs = np.fft.rfftfreq(_DSP_NFFT, 1.0 / _DSP_SR)
    parts: dict[str, list[npt.NDArray[np.float32]]] = {}
    for mag, lead in magnitude_blocks(x, _DSP_NFFT, _DSP_HOP, block_frames=block_frames):
        logmag = np.log1p(100.0 * mag)
        feats = {
            "kick": _band_flux(logmag, freqs, 30, 150),
            "body": _band_flux(logmag, freqs, 150, 400),
            "noise": _band_flux(logmag, freqs, 1500, 5000),
            "hat": _band_flux(logmag, freqs, 6000, 11000),
            "low": mag[(freqs >= 30) & (freqs < 150)].sum(axis=0),
            "mid": mag[(freqs >= 150) & (freqs < 5000)].sum(axis=0),
            "high": mag[freqs >= 6000].sum(axis=0),
        }
        for key, value in feats.items():
            parts.setdefault(key, []).append(value[lead:].astype(np.float32))
    return {key: np.concatenate(value) for key, value in parts.items()}


def _pick_peaks(
    odf: npt.NDArray[np.float32], *, delta: float, wait: int, window: int = 40
) -> npt.NDArray[np.int64]:
    """Frames where `odf` peaks above its local mean by `delta` (relative to its 99th percentile)."""
    from scipy.ndimage import maximum_filter1d, uniform_filter1d

    scale = float(np.percentile(odf, 99.5)) if odf.size else 0.0
    if scale <= 1e-6:
        return np.zeros(0, dtype=np.int64)
    x = odf / scale
    local_max = maximum_filter1d(x, size=2 * 3 + 1, mode="nearest")
    local_mean = uniform_filter1d(x, size=window, mode="nearest")
    cand = np.flatnonzero((x == local_max) & (x > local_mean + delta) & (x > 0.08))
    if cand.size == 0:
        return cand.astype(np.int64)
    keep = np.concatenate([[True], np.diff(cand) > wait])
    return cand[keep].astype(np.int64)


class SpectralDrums:
    """Drums by band-wise spectral flux and decay: the first version, no trained weights.

    Kick from the lowest band, snare from the body + noise bands, hi-hats and cymbals from the top
    band, with open/closed and crash/ride told apart by how long the top band rings.
    """

    name = "dsp"

    def __init__(
        self,
        *,
        kick_delta: float = 0.12,
        snare_delta: float = 0.2,
        hat_delta: float = 0.3,
        snare_body: float = 0.45,
        snare_noise: float = 0.45,
        hat_spill: float = 0.6,
    ) -> None:
        self.kick_delta, self.snare_delta, self.hat_delta = kick_delta, snare_delta, hat_delta
        self.snare_body, self.snare_noise, self.hat_spill = snare_body, snare_noise, hat_spill

    def transcribe(
        self, samples: npt.NDArray[np.float32], sr: int, *, kind: DrumInput = "stem"
    ) -> list[NoteEvent]:
        """Kit-class notes of (n,) mono audio; stems and mixes are decoded alike (`kind` is ignored)."""
        from stemscribe.audio import resample

        x = resample(samples.astype(np.float32), sr, _DSP_SR)
        if x.size < _DSP_NFFT or float(np.abs(x).max(initial=0.0)) < 1e-4:
            return []
        feats = _band_features(x)
        kick_odf, body, noise, hat_odf = feats["kick"], feats["body"], feats["noise"], feats["hat"]
        snare_odf = body + noise
        energy = {"low": feats["low"], "mid": feats["mid"], "high": feats["high"]}
        times = np.arange(kick_odf.size) * (_DSP_HOP / _DSP_SR)  # frame k is centred on sample k * hop
        wait = int(0.04 * _DSP_SR / _DSP_HOP)
        total = cast(npt.NDArray[np.float32], sum(energy.values()) + 1e-9)
        events: list[NoteEvent] = []
        loud = np.log1p(total)
        loud_scale = float(np.percentile(loud, 99.5)) or 1.0

        def add(frames: npt.NDArray[np.int64], pitches: npt.NDArray[np.int64]) -> None:
            for f, p in zip(frames.tolist(), pitches.tolist(), strict=True):
                v = float(np.clip(0.2 + 0.8 * loud[min(f + 2, loud.size - 1)] / loud_scale, 0.05, 1.0))
                t = float(times[f])
                events.append(NoteEvent(int(p), t, t + 0.1, v))

        kicks = _pick_peaks(kick_odf, delta=self.kick_delta, wait=wait)
        # A kick onset must carry low-band energy that dominates its own neighbourhood.
        low_share = energy["low"] / total
        kick_scale = max(float(np.percentile(kick_odf, 99.5)), 1e-6)
        kicks = kicks[
            (low_share[np.minimum(kicks + 3, low_share.size - 1)] > 0.12)
            & (kick_odf[kicks] > 0.3 * kick_scale)
        ]
        add(kicks, np.full(kicks.size, KICK))

        snares = _pick_peaks(snare_odf, delta=self.snare_delta, wait=wait)
        near = np.clip(snares[:, None] + np.arange(-1, 3)[None, :], 0, body.size - 1)
        body_peak = body[near].max(axis=1) / max(float(np.percentile(body, 99.5)), 1e-6)
        noise_peak = noise[near].max(axis=1) / max(float(np.percentile(noise, 99.5)), 1e-6)
        hat_peak = hat_odf[near].max(axis=1) / max(float(np.percentile(hat_odf, 99.5)), 1e-6)
        # A snare hits the body band and the noise band, and its noise is not just a hi-hat's spill.
        snares = snares[
            (body_peak > self.snare_body)
            & (noise_peak > self.snare_noise)
            & (noise_peak > self.hat_spill * hat_peak)
        ]
        add(snares, np.full(snares.size, SNARE))

        hats = _pick_peaks(hat_odf, delta=self.hat_delta, wait=wait)
        if hats.size:
            high = energy["high"]
            # Decay: frames until the top band falls 12 dB below its value just after the onset.
            horizon = int(0.35 * _DSP_SR / _DSP_HOP)
            idx = np.clip(hats[:, None] + 2 + np.arange(horizon)[None, :], 0, high.size - 1)
            ring = high[idx] >= high[np.minimum(hats + 2, high.size - 1)][:, None] * 0.25
            decay = np.argmin(ring, axis=1)
            decay = np.where(ring.all(axis=1), horizon, decay) * _DSP_HOP / _DSP_SR
            brightness = (
                energy["high"][np.minimum(hats + 2, high.size - 1)]
                / total[np.minimum(hats + 2, high.size - 1)]
            )
            # A long, bright ring is a crash; a ride's steady pattern is not told from hats here.
            pitch = np.where(
                (decay > 0.3) & (brightness > 0.5), CRASH, np.where(decay > 0.12, OPEN_HAT, CLOSED_HAT)
            )
            add(hats, pitch.astype(np.int64))
        events.sort(key=lambda n: (n.start, n.pitch))
        return events
