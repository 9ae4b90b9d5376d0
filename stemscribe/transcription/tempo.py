"""Tempo and beats from an onset strength: the audio's, and the transcribed notes' where there are any.

The onset strength is the audio's spectral flux (broadband plus the band below 200 Hz, where kicks and bass
notes start) and, once the notes are known, an envelope of their onsets in which kicks, snares and bass
notes count most and a chord counts as one onset, not one per note: on a mix whose off-beat comping is
louder than its beat (a shuffle, ska, a funk guitar) the audio alone puts the beats half a beat late.
The tempo is the autocorrelation peak of that strength, weighted towards 120 BPM; the beats are the path
of Ellis' dynamic programme (2007) through it: each beat as strong as possible, each gap as near the
tempo's period as possible, so the grid follows a drifting or rubato performance.

Where the beat and the half beat are about as strong (a groove whose kicks, snares and melody sit on the
off-beats as often as on the beats), the onsets cannot say which is the beat; the harmony can: chords
change on beats (Goto 2001). So the grid moves half a beat where the transcribed notes' pitch classes
change clearly more across the off-beats than across the beats. And a groove's chords change every bar
(or half bar, or two), a whole number of beats: where the harmony's period holds a fractional number of
the tempo's beats (a mambo's 3-3-2 accents tracked at 2:3 of its tempo), a related tempo that fits it
takes over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from stemscribe.result import Instrument

ENVELOPE_SR = 22050
ENVELOPE_HOP = 256
ENVELOPE_RATE = ENVELOPE_SR / ENVELOPE_HOP
ENVELOPE_FFT = 1024
LOW_HZ = 200.0

KICK_PITCHES = (35, 36)
SNARE_PITCHES = (37, 38, 40)


@dataclass(frozen=True, slots=True)
class BeatGrid:
    """Median tempo in BPM and beat times in seconds (empty when no pulse was found)."""

    tempo: float
    beats: npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class BeatOptions:
    """How the onset strength is made and how tightly the beats keep the tempo.

    `low_weight` is the low band's flux beside the broadband one (each scaled to unit deviation);
    `note_weight` the notes' envelope beside the audio's. In the notes' envelope each instrument adds,
    per frame, the largest weight of the onsets there: `kick`, `snare` and `other_drums` for the drum
    groups, `bass` and `pitched` (times 1 plus the note's length up to a second) for pitched notes, each
    times 0.5 plus the velocity. `tightness` is the cost of a gap off the period (Ellis' alpha, on
    the log of the ratio squared). Chosen on the dev split (bench/sheet.py).
    """

    low_weight: float = 1.0
    note_weight: float = 1.0
    kick: float = 1.0
    snare: float = 0.6
    other_drums: float = 0.15
    bass: float = 1.0
    pitched: float = 0.4
    tightness: float = 100.0
    lo_bpm: float = 60.0
    hi_bpm: float = 200.0
    # The grid moves half a beat where the harmonic change across its off-beats is this many times the
    # change across its beats and `phase_change_margin` more (`harmonic_change`; the margin keeps a
    # song whose chord never changes where the onsets put it). Chosen on the dev split and dev seeds 7
    # and 11: the two Planet Blupi windows tracked on the off-beat have ratios 1.35 and 1.41 (0.07 and
    # 0.08 more), the 32 tracked on the beat 0.87 or less.
    phase_change_ratio: float = 1.1
    phase_change_margin: float = 0.03
    # A tempo whose beats fit the harmony's bar more than `bar_mismatch` of a beat off a whole number
    # of times gives way to a related tempo that fits within `bar_match` (`_bar_consistent_tempo`),
    # where the harmony's period is at least `bar_strength` clear. Chosen on the dev sets (the dev
    # split, seeds 7 and 11, the metre and Latin material: 60 windows): the 59 tracked at their tempo
    # are at most 0.25 beat off a whole bar, the one at 2:3 of it (a mambo) 0.36.
    bar_mismatch: float = 0.3
    bar_match: float = 0.1
    bar_strength: float = 0.25


def _detrend(flux: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    from scipy.ndimage import uniform_filter1d

    return np.maximum(flux - uniform_filter1d(flux, size=16, mode="nearest"), 0.0)


def _unit(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    spread = float(x.std())
    return x / spread if spread > 0 else x


def onset_envelopes(
    samples: npt.NDArray[np.float32],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(n_frames,) log-magnitude spectral flux of 22050 Hz mono audio at 86 frames/s, broadband and below
    LOW_HZ, each with its slow trend removed."""
    from stemscribe.audio import magnitude_blocks

    top = int(LOW_HZ / (ENVELOPE_SR / ENVELOPE_FFT)) + 1
    full, low = [], []
    for mag, lead in magnitude_blocks(samples.astype(np.float32), ENVELOPE_FFT, ENVELOPE_HOP):
        log = np.log1p(100.0 * mag)
        rise = np.maximum(np.diff(log, axis=1, prepend=log[:, :1]), 0.0)
        full.append(rise.mean(axis=0)[lead:])
        low.append(rise[1:top].mean(axis=0)[lead:])
    return _detrend(np.concatenate(full).astype(np.float64)), _detrend(np.concatenate(low).astype(np.float64))


def onset_envelope(
    samples: npt.NDArray[np.float32], options: BeatOptions | None = None
) -> npt.NDArray[np.float64]:
    """(n_frames,) the audio's onset strength: broadband plus low-band flux, each of unit deviation."""
    options = options or BeatOptions()
    full, low = onset_envelopes(samples)
    return _unit(full) + options.low_weight * _unit(low)


def note_envelope(
    instruments: Sequence[Instrument], n_frames: int, options: BeatOptions | None = None
) -> npt.NDArray[np.float64]:
    """(n_frames,) onset strength of transcribed notes at ENVELOPE_RATE (see BeatOptions), smoothed over
    a few frames so that an onset a frame off still meets the audio's."""
    from scipy.ndimage import gaussian_filter1d

    options = options or BeatOptions()
    env = np.zeros(n_frames)
    for inst in instruments:
        if not inst.notes:
            continue
        start = np.array([n.start for n in inst.notes])
        length = np.array([n.end - n.start for n in inst.notes])
        pitch = np.array([n.pitch for n in inst.notes])
        loud = 0.5 + np.array([n.velocity for n in inst.notes])
        frame = np.rint(start * ENVELOPE_RATE).astype(np.int64)
        inside = (frame >= 0) & (frame < n_frames)
        if inst.is_drum:
            kick, snare = np.isin(pitch, KICK_PITCHES), np.isin(pitch, SNARE_PITCHES)
            groups = [(kick, options.kick), (snare, options.snare), (~kick & ~snare, options.other_drums)]
        else:
            base = options.bass if inst.family.value == "bass" else options.pitched
            groups = [(np.ones(pitch.size, dtype=bool), base * (1.0 + np.minimum(length, 1.0)))]
        for members, weight in groups:
            keep = inside & members
            one = np.zeros(n_frames)
            np.maximum.at(one, frame[keep], (np.broadcast_to(weight, pitch.shape) * loud)[keep])
            env += one
    return gaussian_filter1d(env, 1.5) if env.any() else env


def _autocorrelation(envelope: npt.NDArray[np.floating]) -> npt.NDArray[np.float64] | None:
    """(n,) the smoothed envelope's autocorrelation, 1 at lag 0; None when there is no pulse to find."""
    n = envelope.size
    if n < 4 * ENVELOPE_RATE or not np.any(envelope > 0):
        return None
    from scipy.ndimage import gaussian_filter1d

    # Smooth so that a period falling between two frames still correlates.
    return _normalised_autocorrelation(gaussian_filter1d(envelope.astype(np.float64), 1.5))


def _normalised_autocorrelation(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64] | None:
    """(n,) autocorrelation of x less its mean, 1 at lag 0; None when x is constant."""
    x = x - x.mean()
    spec = np.fft.rfft(x, 2 * x.size)
    ac = np.fft.irfft(spec * np.conj(spec))[: x.size]
    if ac[0] <= 0:
        return None
    return ac / ac[0]


def _refined_lag(ac: npt.NDArray[np.float64], i: int) -> float:
    """Lag i moved to the vertex of the parabola through ac[i - 1 : i + 2] (by at most half a lag)."""
    a, b, c = ac[i - 1], ac[i], ac[i + 1]
    denom = a - 2 * b + c
    shift = 0.5 * (a - c) / denom if denom != 0 else 0.0
    return i + float(np.clip(shift, -0.5, 0.5))


def _tempo_score(ac: npt.NDArray[np.float64], lag: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """How much each beat period (in frames) is the pulse: its autocorrelation, its double's and its
    quadruple's (a beat period repeats, and so do its bars; at a fifth, dotted or 3-3-2 period the bar
    does not come round again), weighted towards 120 BPM."""
    n = ac.size
    bpm = 60.0 * ENVELOPE_RATE / lag
    prior = np.exp(-0.5 * (np.log2(bpm / 120.0) / 0.9) ** 2)
    single = ac[np.minimum(np.rint(lag).astype(int), n - 1)]
    double = ac[np.minimum(np.rint(2 * lag).astype(int), n - 1)]
    quadruple = ac[np.minimum(np.rint(4 * lag).astype(int), n - 1)]
    return (single + 0.5 * double + 0.25 * quadruple) * prior


def estimate_tempo(
    envelope: npt.NDArray[np.floating], *, lo_bpm: float = 60.0, hi_bpm: float = 200.0
) -> float:
    """Tempo in BPM: the autocorrelation peak of the envelope, weighted towards 120 BPM (0 if no pulse).

    Chosen on the dev split's mixes and stems (seeds 2024 and 7): the quadruple's term takes 82% of the
    108 stems' tempi right instead of 76%, and a Planet Blupi tune at 96 BPM off 128 (three sixteenths).
    """
    ac = _autocorrelation(envelope)
    if ac is None:
        return 0.0
    n = ac.size
    lo_lag, hi_lag = int(ENVELOPE_RATE * 60 / hi_bpm), int(ENVELOPE_RATE * 60 / lo_bpm)
    lag = np.arange(lo_lag, hi_lag + 1).astype(np.float64)
    score = _tempo_score(ac, lag)
    best = int(np.argmax(score))
    if ac[lo_lag + best] < 0.05:
        return 0.0
    i = lo_lag + best
    if 1 <= i < n - 1:
        return float(60.0 * ENVELOPE_RATE / _refined_lag(ac, i))
    return float(60.0 * ENVELOPE_RATE / lag[best])


NOVELTY_RATE = 40.0  # frames per second of the harmony's novelty (`harmonic_bar_period`)


def harmonic_bar_period(
    instruments: Sequence[Instrument], duration: float, *, window: float = 0.6
) -> tuple[float, float]:
    """(seconds, strength): the period at which the transcribed notes' harmony changes, 1.2-4.5 s.

    The novelty at a frame is the cosine distance between the pitch classes sounding in the `window`
    seconds before it and in those after; its autocorrelation's highest peak in that range is the
    harmonic rhythm's bar (a chord a bar, or two, or a half bar), and its height the strength (0 to 1).
    (0, 0) where there are too few notes or too little audio.
    """
    n = int(duration * NOVELTY_RATE) + 1
    w = int(window * NOVELTY_RATE)
    hi_lag, lo_lag = int(4.5 * NOVELTY_RATE), int(1.2 * NOVELTY_RATE)
    pc, start, end = _pitch_classes(instruments)
    if n < 2 * hi_lag or not pc.size:
        return 0.0, 0.0
    # Sounding pitch classes per frame, as differences summed over time.
    delta = np.zeros((n + 1, 12))
    a = np.minimum((start * NOVELTY_RATE).astype(np.int64), n)
    b = np.minimum(np.maximum((end * NOVELTY_RATE).astype(np.int64), a + 1), n)
    np.add.at(delta, (a, pc), 1.0)
    np.add.at(delta, (b, pc), -1.0)
    chroma = np.cumsum(delta, axis=0)[:n]
    total = np.vstack([np.zeros((1, 12)), np.cumsum(chroma, axis=0)])
    t = np.arange(w, n - w)
    before, after = total[t] - total[t - w], total[t + w] - total[t]
    norm = np.linalg.norm(before, axis=1) * np.linalg.norm(after, axis=1)
    novelty = np.zeros(n)
    novelty[t] = np.where(norm > 0, 1.0 - (before * after).sum(axis=1) / np.maximum(norm, 1e-12), 0.0)
    ac = _normalised_autocorrelation(novelty)
    if ac is None:
        return 0.0, 0.0
    k = lo_lag + int(np.argmax(ac[lo_lag:hi_lag]))
    return _refined_lag(ac, k) / NOVELTY_RATE, float(ac[k])


# Other tempi a beat tracker confuses with the true one (the ratios of 3-3-2 and dotted rhythms).
RELATED_TEMPI = (2 / 3, 3 / 4, 4 / 3, 3 / 2)


def _bar_consistent_tempo(
    tempo: float,
    envelope: npt.NDArray[np.float64],
    instruments: Sequence[Instrument],
    options: BeatOptions,
) -> float:
    """`tempo`, or the related tempo whose beats fit a whole number of times in the harmony's bar.

    A groove's chords change every bar (or two, or half), a whole number of beats. Where the harmony's
    period (`harmonic_bar_period`, at least `options.bar_strength`) holds a number of beats more than
    `options.bar_mismatch` off a whole one, the tempo is not the beat's; of RELATED_TEMPI's tempi
    whose beats fit the bar within `options.bar_match`, the one the envelope's autocorrelation scores
    best replaces it.
    """
    if tempo <= 0 or options.bar_mismatch <= 0:
        return tempo
    period, strength = harmonic_bar_period(instruments, envelope.size / ENVELOPE_RATE)
    if strength < options.bar_strength:
        return tempo

    def mismatch(bpm: float) -> float:
        beats = period * bpm / 60.0
        return abs(beats - round(beats))

    if mismatch(tempo) <= options.bar_mismatch:
        return tempo
    candidates = [
        tempo * r
        for r in RELATED_TEMPI
        if options.lo_bpm <= tempo * r <= options.hi_bpm and mismatch(tempo * r) <= options.bar_match
    ]
    ac = _autocorrelation(envelope)
    if not candidates or ac is None:
        return tempo
    lags = ENVELOPE_RATE * 60.0 / np.asarray(candidates)
    return float(candidates[int(np.argmax(_tempo_score(ac, lags)))])


def dp_beats(
    envelope: npt.NDArray[np.float64], period: float, tightness: float = 100.0
) -> npt.NDArray[np.int64]:
    """Beat frames: the path through the (n_frames,) envelope that best trades onset strength at the beats
    against gaps off `period` frames (Ellis 2007), from the first frame to the end.

    Every gap lies in [period / 2, 2 * period], so the frames of one half period depend only on earlier
    ones and are scored together: a few hundred array steps for a 30 s song.
    """
    from scipy.ndimage import gaussian_filter1d

    n = envelope.size
    local = gaussian_filter1d(envelope.astype(np.float64), period / 32.0 + 1e-3)
    lags = np.arange(int(round(period / 2)), int(round(2 * period)) + 1)
    cost = -tightness * np.log(lags / period) ** 2
    cum = np.zeros(n)
    back = np.full(n, -1, dtype=np.int64)
    step = int(lags[0])
    for t0 in range(0, n, step):
        t = np.arange(t0, min(n, t0 + step))
        prev = t[:, None] - lags[None, :]
        # A predecessor before the first frame is a beat of the silence before the audio: no strength,
        # only the cost of its gap (so a path may start anywhere in the first period for free).
        cand = np.where(prev >= 0, cum[np.maximum(prev, 0)], 0.0) + cost[None, :]
        best = np.argmax(cand, axis=1)
        rows = np.arange(t.size)
        cum[t] = local[t] + cand[rows, best]
        back[t] = np.where(prev[rows, best] >= 0, prev[rows, best], -1)
    # The last beat: the best-scoring frame of the last period (every frame there has as many beats
    # behind it); then back to the start, and the silent beats at either end trimmed.
    tail = max(1, int(round(period)))
    frame = n - tail + int(np.argmax(cum[n - tail :]))
    path = [frame]
    while back[frame] >= 0:
        frame = int(back[frame])
        path.append(frame)
    beats = np.array(path[::-1], dtype=np.int64)
    strength = local[beats]
    floor = 0.1 * float(np.sqrt(np.mean(strength**2)))
    sounding = np.flatnonzero(strength >= floor)
    return beats[sounding[0] : sounding[-1] + 1] if sounding.size else beats[:0]


def _pitch_classes(
    instruments: Sequence[Instrument],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(pitch class, start, end) of every pitched note, in seconds."""
    notes = [n for i in instruments if not i.is_drum for n in i.notes]
    return (
        np.array([n.pitch % 12 for n in notes], dtype=np.int64),
        np.array([n.start for n in notes], dtype=np.float64),
        np.array([n.end for n in notes], dtype=np.float64),
    )


def harmonic_change(instruments: Sequence[Instrument], beats: npt.NDArray[np.float64]) -> float:
    """Mean cosine distance between the pitch classes sounding in each beat span and in the one before.

    A span is [beats[i], beats[i + 1]); each note adds its overlap with the span (in seconds) to its pitch
    class. 0 when fewer than three beats or no pitched notes.
    """
    return _change_across(*_pitch_classes(instruments), beats)


def _change_across(
    pc: npt.NDArray[np.int64],
    start: npt.NDArray[np.float64],
    end: npt.NDArray[np.float64],
    beats: npt.NDArray[np.float64],
) -> float:
    """`harmonic_change` of notes given as `_pitch_classes` arrays."""
    if len(beats) < 3 or not pc.size:
        return 0.0
    # Every (note, span) pair the note sounds in: spans first..last of each note, found by bisection.
    first = np.maximum(np.searchsorted(beats, start, side="right") - 1, 0)
    last = np.minimum(np.searchsorted(beats, end, side="left") - 1, beats.size - 2)
    counts = np.maximum(last - first + 1, 0)
    note = np.repeat(np.arange(pc.size), counts)
    span = np.repeat(first, counts) + (np.arange(note.size) - np.repeat(np.cumsum(counts) - counts, counts))
    overlap = np.minimum(end[note], beats[span + 1]) - np.maximum(start[note], beats[span])
    chroma = np.zeros((beats.size - 1, 12))
    keep = overlap > 0
    np.add.at(chroma, (span[keep], pc[note[keep]]), overlap[keep])
    after, before = chroma[1:], chroma[:-1]
    norm = np.linalg.norm(after, axis=1) * np.linalg.norm(before, axis=1)
    cos = np.where(norm > 0, (after * before).sum(axis=1) / np.maximum(norm, 1e-12), 1.0)
    return float(np.mean(1.0 - cos))


def _harmonic_phase(
    beats: npt.NDArray[np.float64],
    instruments: Sequence[Instrument],
    duration: float,
    options: BeatOptions,
) -> npt.NDArray[np.float64]:
    """`beats`, or the grid half a beat later where the harmony changes on its off-beats (module doc)."""
    if beats.size < 4 or options.phase_change_ratio <= 0:
        return beats
    half = 0.5 * (beats[1:] + beats[:-1])
    first, last = half[0] - (beats[1] - beats[0]), half[-1] + (beats[-1] - beats[-2])
    shifted = np.concatenate([[first] if first >= 0 else [], half, [last] if last < duration else []])
    notes = _pitch_classes(instruments)
    on, off = _change_across(*notes, beats), _change_across(*notes, shifted)
    clearly = off > options.phase_change_ratio * on and off - on > options.phase_change_margin
    return shifted if clearly else beats


def track_beats(
    samples: npt.NDArray[np.float32],
    instruments: Sequence[Instrument] = (),
    options: BeatOptions | None = None,
    *,
    envelope: npt.NDArray[np.float64] | None = None,
) -> BeatGrid:
    """Beat grid of 22050 Hz mono audio, and of its transcribed notes where given (see the module doc);
    `envelope` is the audio's `onset_envelope(samples, options)` when the caller made it already (it
    needs only the audio, so it can be made beside the transcription)."""
    options = options or BeatOptions()
    env = onset_envelope(samples, options) if envelope is None else envelope
    if instruments and options.note_weight > 0:
        notes = note_envelope(instruments, env.size, options)
        if notes.any():
            env = env + options.note_weight * _unit(notes)
    tempo = estimate_tempo(env, lo_bpm=options.lo_bpm, hi_bpm=options.hi_bpm)
    if instruments:
        tempo = _bar_consistent_tempo(tempo, env, instruments, options)
    if tempo <= 0:
        return BeatGrid(0.0, np.zeros(0))
    period = ENVELOPE_RATE * 60.0 / tempo
    times = dp_beats(env, period, options.tightness) / ENVELOPE_RATE
    if instruments:
        times = _harmonic_phase(times, instruments, env.size / ENVELOPE_RATE, options)
    median = float(np.median(np.diff(times))) if times.size > 2 else 60.0 / tempo
    return BeatGrid(60.0 / median, times.astype(np.float64))
