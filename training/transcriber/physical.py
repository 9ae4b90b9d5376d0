"""Model-based timbres for the transcription network's data: struck bars, drawbar organs, free reeds,
a stiff-string piano and two-operator FM.

The SoundFonts we may train on give the keys family (programs 8-23: mallets, bells, organs, accordions)
and the piano few presets each, and our wavetable synthesis (`voices.synth_part`) only harmonic spectra;
the held-out banks' keys and pianos are where the network is weakest. These voices sound like those
instruments from how the instruments work rather than from anyone's samples:
- `bar_part`: a struck bar or tine (marimba, xylophone, vibraphone, glockenspiel, celesta, music box),
  a sum of decaying inharmonic modes in the ratios of that kind of bar, higher modes dying sooner, a
  mallet's noise at the strike and a vibraphone's motor tremolo;
- `organ_part`: a drawbar organ, nine footages (16' ... 1') at random drawbar settings, key click,
  percussion on the 2nd or 3rd harmonic and a rotating speaker's tremolo and pitch wobble;
- `reed_part`: an accordion or harmonica, a pulse wave per reed with two or three reeds detuned;
- `piano_part`: a piano from the stiff-string model, partials stretched by the string's inharmonicity,
  a hammer-position comb, two-stage decay, unison strings beating and the hammer's thump;
- `fm_part`: two-operator FM (a modulator's index that decays or follows the note), per family: electric
  pianos, bells, FM basses, brass and synth leads.
Every note sounds at its MIDI pitch (the bar's fundamental, the organ's 8' stop): the labels stay the
part's notes. Nothing here reads a file.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pretty_midi
from scipy.signal import butter, lfilter

from stemscribe.stems import Family
from training.drums.data import SAMPLE_RATE

Note = tuple[float, float, int, int]  # start s, end s, MIDI pitch, velocity
NYQUIST = 0.45 * SAMPLE_RATE
MAX_RING = 4.0  # seconds a decaying note may ring past its start (quieter than -60 dB by then)

# Struck bars: mode frequency ratios to the fundamental, the upper modes' amplitude range, fundamental
# decay (s) range, how much faster the upper modes decay (tau_k = tau_1 / ratio_k ** p), mallet hardness
# (strike noise brightness). The fundamental dominates, as the bar's pitch does to a listener.
Span = tuple[float, float]
Bar = tuple[tuple[float, ...], Span, Span, Span, Span]
BARS: dict[str, Bar] = {
    "marimba": ((1.0, 3.93, 9.2), (0.05, 0.5), (0.4, 1.5), (0.5, 1.0), (0.5, 2.0)),
    "xylophone": ((1.0, 3.0, 6.1, 9.8), (0.05, 0.3), (0.12, 0.5), (0.5, 1.0), (2.0, 5.0)),
    "vibraphone": ((1.0, 4.0, 10.0), (0.05, 0.4), (1.0, 4.0), (0.4, 0.9), (1.0, 3.0)),
    "glockenspiel": ((1.0, 2.71, 5.15, 8.43), (0.01, 0.08), (0.8, 3.0), (0.6, 1.0), (3.0, 6.0)),
    "celesta": ((1.0, 2.0, 3.01, 4.16, 5.4), (0.05, 0.4), (0.4, 1.5), (0.5, 1.2), (1.5, 4.0)),
    "music box": ((1.0, 6.27, 17.55), (0.05, 0.4), (0.6, 2.0), (0.3, 0.8), (3.0, 6.0)),
}


def _rng_range(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(rng.uniform(*lo_hi))


def _modes(
    f0: float,
    ratios: npt.NDArray[np.float64],
    amps: npt.NDArray[np.float64],
    taus: npt.NDArray[np.float64],
    n: int,
    phases: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """Sum of exponentially decaying sinusoids (modes above the Nyquist limit left out)."""
    keep = ratios * f0 < NYQUIST
    t = np.arange(n) / SAMPLE_RATE
    out = np.zeros(n)
    for r, a, tau, ph in zip(ratios[keep], amps[keep], taus[keep], phases[keep], strict=True):
        out += a * np.exp(-t / tau) * np.sin(2 * np.pi * r * f0 * t + ph)
    return out


def damp(out: npt.NDArray[np.float64], held: float, release: float) -> npt.NDArray[np.float64]:
    """Once the note is released (after `held` s), a decay with time constant `release` / 3."""
    t = np.arange(len(out)) / SAMPLE_RATE
    return out * np.exp(-np.maximum(t - held, 0.0) / max(release / 3, 1e-3))


def render_notes(
    notes: list[Note], n: int, note_fn: Callable[[int, int, float], npt.NDArray[np.float64]]
) -> npt.NDArray[np.float64]:
    """(n,) the notes' tones, `note_fn(pitch, velocity, held seconds)` each, placed at their starts."""
    out = np.zeros(n)
    for start, end, pitch, vel in notes:
        s = int(round(start * SAMPLE_RATE))
        if s < n:
            tone = note_fn(pitch, vel, max(end - start, 0.02))[: n - s]
            out[s : s + len(tone)] += tone
    return out


def normalised(out: npt.NDArray[np.float64], level: float) -> npt.NDArray[np.float32]:
    """A part at peak 0.7 x `level` (the reference level of the renderer's SoundFont piano)."""
    return (out / max(float(np.abs(out).max()), 1e-9) * level * 0.7).astype(np.float32)


def bar_part(rng: np.random.Generator, notes: list[Note], n: int, level: float) -> npt.NDArray[np.float32]:
    """A part on one struck bar instrument (a random kind of `BARS`, its ratios jittered by up to 2 %)."""
    kind = list(BARS)[int(rng.integers(len(BARS)))]
    base, amp_range, tau_range, slope_range, hard_range = BARS[kind]
    ratios = np.array(base) * np.concatenate([[1.0], rng.uniform(0.98, 1.02, len(base) - 1)])
    amps = np.concatenate([[1.0], rng.uniform(*amp_range, len(base) - 1)])
    tau1 = _rng_range(rng, tau_range)
    slope = _rng_range(rng, slope_range)
    hardness = _rng_range(rng, hard_range)
    release = float(rng.uniform(0.05, 0.4))
    tremolo = (float(rng.uniform(3, 8)), float(rng.uniform(0.1, 0.5))) if kind == "vibraphone" else None
    if tremolo is not None and rng.random() < 0.3:
        tremolo = None  # the motor off

    def note(pitch: int, vel: int, held: float) -> npt.NDArray[np.float64]:
        f0 = pretty_midi.note_number_to_hz(pitch)
        loud = vel / 127.0
        tau = tau1 * 2 ** (-(pitch - 72) / 24)  # higher bars ring shorter
        ring = min(held + release * 1.5, MAX_RING)
        n_note = int(ring * SAMPLE_RATE) + 1
        # harder strikes wake the upper modes more
        gains = amps * loud ** (0.3 * (ratios - 1) / ratios.max() * hardness)
        out = _modes(f0, ratios, gains, tau / ratios**slope, n_note, rng.uniform(0, 2 * np.pi, len(ratios)))
        strike_len = min(int(rng.uniform(0.002, 0.008) * SAMPLE_RATE), n_note)
        cutoff = min(f0 * (2 + 2 * hardness), NYQUIST) / (SAMPLE_RATE / 2)
        b, a = butter(1, cutoff, btype="low")
        noise = lfilter(b, a, rng.standard_normal(strike_len)) * np.hanning(strike_len)
        out[:strike_len] += 0.3 * hardness / 4 * noise
        return damp(out, held, release) * loud**1.6

    out = render_notes(notes, n, note)
    if tremolo is not None:
        t = np.arange(n) / SAMPLE_RATE
        out *= 1 - tremolo[1] * (0.5 + 0.5 * np.sin(2 * np.pi * tremolo[0] * t))
    return normalised(out, level)


# Drawbar footages as harmonics of the 8' stop: 16', 5 1/3', 8', 4', 2 2/3', 2', 1 3/5', 1 1/3', 1'.
DRAWBARS = np.array([0.5, 1.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0])


def organ_part(rng: np.random.Generator, notes: list[Note], n: int, level: float) -> npt.NDArray[np.float32]:
    """A part on a drawbar organ with one registration (each drawbar step is 3 dB; the 8' the loudest,
    the 4' 3 dB under it, the higher ones 9 dB, the 16' and 5 1/3' (whose common period is an
    octave down) 12 dB, so the note's pitch is the one heard), key click, percussion and
    a rotating speaker, slow or fast."""
    bars = rng.integers(0, 9, len(DRAWBARS)).astype(np.float64) * (rng.random(len(DRAWBARS)) < 0.6)
    bars[2] = rng.integers(6, 9)  # the 8' always speaks
    bars = np.minimum(bars, bars[2] - np.where(DRAWBARS > 2, 3, np.where(DRAWBARS > 1, 1, 0)))
    bars[[0, 1]] = np.minimum(bars[[0, 1]], bars[2] - 4)  # the 16' and the 5 1/3' (a fifth above it)
    bars = np.maximum(bars, 0)
    amps = np.where(bars > 0, 10 ** ((bars - 8) * 3 / 20), 0.0)
    percussion = (float(rng.choice([2.0, 3.0])), float(rng.uniform(0.2, 1.0))) if rng.random() < 0.4 else None
    click = float(rng.uniform(0.05, 0.3)) if rng.random() < 0.6 else 0.0
    rotor = float(rng.choice([0.8, 6.5])) * float(rng.uniform(0.9, 1.1)) if rng.random() < 0.6 else 0.0
    release = float(rng.uniform(0.01, 0.06))

    def note(pitch: int, vel: int, held: float) -> npt.NDArray[np.float64]:
        f0 = pretty_midi.note_number_to_hz(pitch)
        n_note = int((held + release * 1.5) * SAMPLE_RATE) + 1
        t = np.arange(n_note) / SAMPLE_RATE
        out = np.zeros(n_note)
        for ratio, amp in zip(DRAWBARS, amps, strict=True):
            if amp > 0 and ratio * f0 < NYQUIST:
                out += amp * np.sin(2 * np.pi * ratio * f0 * t + rng.uniform(0, 2 * np.pi))
        if percussion is not None and percussion[0] * f0 < NYQUIST:
            out += 0.6 * amps[2] * np.exp(-t / percussion[1]) * np.sin(2 * np.pi * percussion[0] * f0 * t)
        out *= np.minimum(1.0, t / 0.004)
        if click > 0:
            k = min(int(0.004 * SAMPLE_RATE), n_note)
            out[:k] += click * rng.standard_normal(k) * np.hanning(k)
        return damp(out, held, release) * (0.3 + 0.7 * vel / 127.0)  # swell pedal, not touch

    out = render_notes(notes, n, note)
    if rotor > 0:
        t = np.arange(n) / SAMPLE_RATE
        phase = 2 * np.pi * rotor * t
        depth = float(rng.uniform(0.1, 0.35))
        # the horn's Doppler wobble as a small time-varying delay, then its tremolo
        delay = 0.0006 * (1 + np.sin(phase)) * SAMPLE_RATE
        out = np.interp(np.arange(n) - delay, np.arange(n), out)
        out *= 1 - depth * (0.5 + 0.5 * np.sin(phase + 1.0))
    return normalised(out, level)


def _pulse_series(f0: float, duty: float, n_partials: int) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic numbers and amplitudes of a pulse wave with the given duty cycle, band-limited."""
    k = np.arange(1, n_partials + 1, dtype=np.float64)
    k = k[k * f0 < NYQUIST]
    amps = np.abs(np.sin(np.pi * k * duty)) / k
    return k, amps / max(float(amps.max()), 1e-9)


def reed_part(rng: np.random.Generator, notes: list[Note], n: int, level: float) -> npt.NDArray[np.float32]:
    """A part on free reeds: an accordion (two or three reeds, the others detuned 5-35 cents, musette)
    or a harmonica (one reed, breathier, bent a little into each note)."""
    harmonica = rng.random() < 0.35
    duty = float(rng.uniform(0.1, 0.45))
    reeds = 1 if harmonica else int(rng.integers(2, 4))
    detune = float(rng.uniform(5, 35))
    attack = float(rng.uniform(0.01, 0.06))
    release = float(rng.uniform(0.03, 0.15))
    body = float(rng.uniform(800, 2500))
    breath = float(rng.uniform(0.02, 0.08)) if harmonica else 0.0

    def note(pitch: int, vel: int, held: float) -> npt.NDArray[np.float64]:
        f0 = pretty_midi.note_number_to_hz(pitch)
        n_note = int((held + release * 1.5) * SAMPLE_RATE) + 1
        t = np.arange(n_note) / SAMPLE_RATE
        k, amps = _pulse_series(f0, duty, 40)
        amps = amps * (1 + 2 * np.exp(-0.5 * (np.log2(k * f0 / body) / 0.5) ** 2))
        out = np.zeros(n_note)
        for r in range(reeds):
            cents = 0.0 if r == 0 else detune * (1 if r == 1 else -1)
            bend = -40 * np.exp(-t / 0.05) if harmonica else 0.0
            freq = f0 * 2 ** ((cents + bend) / 1200)
            phase = 2 * np.pi * np.cumsum(np.broadcast_to(freq, t.shape)) / SAMPLE_RATE
            for kk, a in zip(k, amps, strict=True):
                out += a * np.sin(kk * phase)
        if breath > 0:
            out += breath * float(np.abs(out).max(initial=1.0)) * rng.standard_normal(n_note)
        out *= np.minimum(1.0, t / attack)
        return damp(out, held, release) * (0.4 + 0.6 * vel / 127.0)

    return normalised(render_notes(notes, n, note), level)


def piano_part(rng: np.random.Generator, notes: list[Note], n: int, level: float) -> npt.NDArray[np.float32]:
    """A part on a stiff-string piano: partial k at k f0 sqrt(1 + B k^2), B rising with pitch; amplitudes
    a hammer-position comb (|sin(pi k beta)|) under a velocity-dependent roll-off; each partial's prompt
    and slow decay; two or three unison strings a little apart (beats); the hammer's thump; dampers."""
    b_mid = 10 ** float(rng.uniform(-4.0, -3.3))
    beta = float(rng.uniform(1 / 9, 1 / 7))
    detune = float(rng.uniform(0.3, 2.5))  # cents between unison strings
    tau_mid = float(rng.uniform(2.0, 6.0))
    prompt = float(rng.uniform(0.15, 0.45))  # the prompt sound's share of the decay's level
    damper = float(rng.uniform(0.05, 0.2))
    thump = float(rng.uniform(0.0, 0.15))
    tilt = float(rng.uniform(0.6, 1.2))

    def note(pitch: int, vel: int, held: float) -> npt.NDArray[np.float64]:
        f0 = pretty_midi.note_number_to_hz(pitch)
        loud = vel / 127.0
        ring = min(held + damper * 1.5, MAX_RING) if pitch < 89 else min(MAX_RING, 2.0)
        n_note = int(ring * SAMPLE_RATE) + 1
        t = np.arange(n_note) / SAMPLE_RATE
        inharm = b_mid * 2 ** ((pitch - 60) / 18)
        k = np.arange(1, 25, dtype=np.float64)
        freqs = k * f0 * np.sqrt(1 + inharm * k**2)
        cutoff = f0 * (3 + 25 * loud**2)
        amps = (np.abs(np.sin(np.pi * k * beta)) + 0.05) / k**tilt / np.sqrt(1 + (freqs / cutoff) ** 4)
        keep = (freqs < NYQUIST) & (amps > 2e-3 * amps[0])  # partials above -54 dB left out
        k, freqs, amps = k[keep], freqs[keep], amps[keep]
        tau = tau_mid * 2 ** (-(pitch - 60) / 20) / (1 + 0.15 * (k - 1))
        strings = 1 if pitch < 35 else (2 if pitch < 48 else 3)
        out = np.zeros(n_note)
        for s in range(strings):
            cents = detune * (s - (strings - 1) / 2)
            scale = 2 ** (cents / 1200)
            for f, a, tk in zip(freqs, amps, tau, strict=True):
                decay = prompt * np.exp(-t / (tk * 0.15)) + (1 - prompt) * np.exp(-t / tk)
                out += a * decay * np.sin(2 * np.pi * f * scale * t + rng.uniform(0, 2 * np.pi))
        out /= strings
        if thump > 0:
            k_len = min(int(0.03 * SAMPLE_RATE), n_note)
            b, a = butter(2, 300 / (SAMPLE_RATE / 2), btype="low")
            out[:k_len] += thump * loud * lfilter(b, a, rng.standard_normal(k_len)) * np.hanning(k_len)
        if pitch < 89:
            out = damp(out, held, damper)
        return out * loud**1.6

    return normalised(render_notes(notes, n, note), level)


# Two-operator FM per family (no ratio under 1: a modulator at half the carrier sounds an octave down):
# (modulator:carrier ratios to choose from, peak index range, index decay
# time range (s; 0: the index follows the amplitude envelope), amplitude decay range (s; 0: sustained),
# attack range (s)).
FM: dict[Family, tuple[tuple[float, ...], tuple[float, float], tuple[float, float], tuple[float, float],
                       tuple[float, float]]] = {
    Family.PIANO: ((1.0, 14.0, 1.0), (1.0, 4.0), (0.05, 0.4), (0.8, 3.0), (0.001, 0.004)),  # e-pianos
    Family.KEYS: ((4.0, 5.0, 7.0, 3.5), (0.3, 1.5), (0.2, 1.5), (0.8, 3.0), (0.001, 0.005)),  # bells
    Family.BASS: ((1.0, 2.0, 3.0), (1.0, 6.0), (0.05, 0.3), (0.6, 2.0), (0.001, 0.006)),
    Family.BRASS: ((1.0,), (1.5, 5.0), (0.0, 0.0), (0.0, 0.0), (0.03, 0.1)),
    Family.SYNTH: ((1.0, 2.0, 3.0), (0.5, 4.0), (0.0, 1.0), (0.0, 0.0), (0.003, 0.3)),
}  # fmt: skip


def fm_part(
    rng: np.random.Generator, family: Family, notes: list[Note], n: int, level: float
) -> npt.NDArray[np.float32]:
    """A part on one two-operator FM patch of the family (`FM`): sin(w t + I(t) sin(r w t))."""
    ratios, index_range, index_decay_range, amp_decay_range, attack_range = FM[family]
    ratio = float(rng.choice(ratios))
    index = _rng_range(rng, index_range)
    index_decay = _rng_range(rng, index_decay_range)
    amp_decay = _rng_range(rng, amp_decay_range)
    attack = _rng_range(rng, attack_range)
    release = float(rng.uniform(0.03, 0.3))
    vibrato = float(rng.uniform(0, 15)) if family in (Family.BRASS, Family.SYNTH) else 0.0

    def note(pitch: int, vel: int, held: float) -> npt.NDArray[np.float64]:
        f0 = pretty_midi.note_number_to_hz(pitch)
        loud = vel / 127.0
        ring = min(held + release * 1.5, MAX_RING) if amp_decay > 0 else held + release * 1.5
        n_note = int(ring * SAMPLE_RATE) + 1
        t = np.arange(n_note) / SAMPLE_RATE
        amp = np.minimum(1.0, t / attack) * (np.exp(-t / amp_decay) if amp_decay > 0 else 1.0)
        # the index follows the loudness and either decays on its own or with the amplitude
        idx = index * (0.4 + 0.6 * loud) * (np.exp(-t / index_decay) if index_decay > 0 else amp)
        wobble = 2 ** (vibrato * np.minimum(1.0, t / 0.3) * np.sin(2 * np.pi * 5.5 * t) / 1200)
        phase = 2 * np.pi * f0 * np.cumsum(wobble) / SAMPLE_RATE
        if ratio * f0 * (1 + float(np.max(idx, initial=0.0))) >= NYQUIST:
            idx = idx * 0.2  # keep the sidebands under the Nyquist limit, roughly
        out = amp * np.sin(phase + idx * np.sin(ratio * phase))
        return damp(out, held, release) * loud**1.6

    return normalised(render_notes(notes, n, note), level)


def physical_part(
    rng: np.random.Generator, family: Family, notes: list[Note], n: int, level: float
) -> npt.NDArray[np.float32] | None:
    """A part of the family on one of the voices above (None for a family none of them plays)."""
    draw = rng.random()
    if family is Family.KEYS:
        if draw < 0.4:
            return bar_part(rng, notes, n, level)
        if draw < 0.7:
            return organ_part(rng, notes, n, level)
        if draw < 0.85:
            return reed_part(rng, notes, n, level)
        return fm_part(rng, family, notes, n, level)
    if family is Family.PIANO:
        return piano_part(rng, notes, n, level) if draw < 0.6 else fm_part(rng, family, notes, n, level)
    if family in FM:
        return fm_part(rng, family, notes, n, level)
    return None
