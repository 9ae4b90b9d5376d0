"""Posteriorgrams to note events: pure numpy, vectorised over frames and pitches.

Two decoders share one representation (`NoteArrays`: parallel arrays of start/end frames, pitches and
velocities):
- `decode_polyphonic` for piano, guitar, keys, strings and mixes: onset peaks open notes, the frame
  posterior keeps them sounding, a new onset at the same pitch closes the previous one.
- `decode_monophonic` for bass, vocals and lead lines: one pitch per frame within a range, octave
  errors folded back onto the local pitch track, notes cut where the pitch changes or re-attacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from stemscribe.result import NoteEvent
from stemscribe.transcription.pitch_model import (
    FFT_HOP,
    HOP_SAMPLES,
    MIDI_OFFSET,
    SAMPLE_RATE,
    Posteriors,
    frame_samples,
    frame_times,
)

FRAME_SECONDS = FFT_HOP / SAMPLE_RATE
LOOKAHEAD = 3  # frames an onset may precede its pitch's frame activity
WEAK_FRAME_RATIO = 0.6  # share of the frame threshold that a strong onset's run must hold


@dataclass(frozen=True, slots=True)
class DecodeOptions:
    """Thresholds and limits of note decoding.

    `min_pitch`/`max_pitch` are MIDI numbers; `gap_frames` closes dips of the frame posterior
    shorter than that many frames; `min_frames` drops shorter notes; a note on a partial of a note
    that starts with it and is weaker than `harmonic_ratio` times that note is dropped (0 keeps all).
    Monophonic lines only: `reattack_db` (0: off) splits a held pitch where the level swells by that
    many dB after a sag (sung and bowed repeats); `harmonic_boost` (0: off) lifts pitches below
    `harmonic_below` that the model hears through their partials (low bass). Polyphonic only:
    `strong_onset` (0: off) opens notes whose frame posterior stays below the threshold when the onset
    head peaks at least that high (strummed top strings); `offset_ratio` (0: off) also ends a note where
    its frame posterior falls below that share of its peak over its first frames (release tails; also
    read by `ends_from_frames`).
    """

    onset_threshold: float = 0.5
    frame_threshold: float = 0.3
    min_frames: int = 4
    gap_frames: int = 2
    min_pitch: int = 21
    max_pitch: int = 108
    infer_onsets: bool = True
    harmonic_ratio: float = 0.6
    backtrack_frames: int = 12
    rise_level: float = 0.0
    reattack_rise: float = 1.0
    reattack_db: float = 0.0
    harmonic_boost: float = 0.0
    harmonic_below: int = 40
    strong_onset: float = 0.0
    offset_ratio: float = 0.0

    @property
    def repeat_onset(self) -> float:
        """The onset peak that marks a real repeat of a held pitch in a monophonic line."""
        return max(self.onset_threshold, 0.5)


@dataclass(frozen=True, slots=True)
class NoteArrays:
    """Decoded notes as parallel arrays (n_notes,): frame indices, MIDI pitches, velocities 0..1."""

    start: npt.NDArray[np.int64]
    end: npt.NDArray[np.int64]
    pitch: npt.NDArray[np.int64]
    velocity: npt.NDArray[np.float32]

    @classmethod
    def empty(cls) -> NoteArrays:
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z.copy(), z.copy(), np.zeros(0, dtype=np.float32))

    def __len__(self) -> int:
        return int(self.start.shape[0])

    def select(self, mask: npt.NDArray[np.bool_]) -> NoteArrays:
        return NoteArrays(self.start[mask], self.end[mask], self.pitch[mask], self.velocity[mask])

    @staticmethod
    def concat(parts: list[NoteArrays]) -> NoteArrays:
        if not parts:
            return NoteArrays.empty()
        return NoteArrays(
            np.concatenate([p.start for p in parts]),
            np.concatenate([p.end for p in parts]),
            np.concatenate([p.pitch for p in parts]),
            np.concatenate([p.velocity for p in parts]),
        )


def _next_index(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """(T, P) for each cell, the first frame index >= t where `mask` is True in that column (T if none)."""
    n = mask.shape[0]
    idx = np.where(mask, np.arange(n)[:, None], n)
    return np.minimum.accumulate(idx[::-1], axis=0)[::-1]


def _close_gaps(active: npt.NDArray[np.bool_], gap: int) -> npt.NDArray[np.bool_]:
    """Fill runs of False no longer than `gap` frames that have True on both sides (per column)."""
    if gap <= 0:
        return active
    n = active.shape[0]
    t = np.arange(n)[:, None]
    last_true = np.maximum.accumulate(np.where(active, t, -(10**9)), axis=0)
    next_true = _next_index(active)
    return active | ((t - last_true <= gap) & (next_true - t <= gap) & (next_true < n))


def _peaks(x: npt.NDArray[np.floating[Any]], threshold: float) -> npt.NDArray[np.bool_]:
    """(T, P) local maxima in time above `threshold` (plateaus count once, at their first frame)."""
    prev = np.vstack([np.full((1, x.shape[1]), -np.inf, dtype=x.dtype), x[:-1]])
    nxt = np.vstack([x[1:], np.full((1, x.shape[1]), -np.inf, dtype=x.dtype)])
    return (x > threshold) & (x > prev) & (x >= nxt)


def frame_loudness(samples: npt.NDArray[np.float32], n_frames: int) -> npt.NDArray[np.float32]:
    """(n_frames,) loudness 0..1 per model frame: RMS over 1024 samples in dB, -60..0 mapped to 0..1."""
    if n_frames == 0:
        return np.zeros(0, dtype=np.float32)
    width = 4 * FFT_HOP
    starts = np.minimum(frame_samples(np.arange(n_frames)).astype(np.int64), samples.shape[0])
    # Every window edge falls on a multiple of `block` samples: sum the squares per block first,
    # so the running sum (float64, for precision over long files) runs over a quarter as many values.
    block = int(np.gcd.reduce([FFT_HOP, HOP_SAMPLES, width // 2]))
    padded = np.pad(samples.astype(np.float32), (width // 2, width + block))
    n_blocks = padded.shape[0] // block
    energy = np.square(padded[: n_blocks * block]).reshape(n_blocks, block).sum(axis=1, dtype=np.float64)
    power = np.concatenate([[0.0], np.cumsum(energy)])
    rms = np.sqrt(np.maximum(power[(starts + width) // block] - power[starts // block], 0.0) / width)
    db = 20.0 * np.log10(np.maximum(rms, 1e-6))
    return np.clip((db + 60.0) / 60.0, 0.0, 1.0).astype(np.float32)


def _velocities(
    post: Posteriors,
    loudness: npt.NDArray[np.float32],
    start: npt.NDArray[np.int64],
    pitch_idx: npt.NDArray[np.int64],
) -> npt.NDArray[np.float32]:
    """Velocity 0..1 from the audio: loudness around the attack and the note posterior's strength."""
    if start.size == 0:
        return np.zeros(0, dtype=np.float32)
    t = np.clip(start[:, None] + np.arange(0, 4)[None, :], 0, post.n_frames - 1)
    loud = loudness[t].max(axis=1)
    strength = post.note[t, pitch_idx[:, None]].max(axis=1)
    v = 0.15 + 0.85 * (0.7 * loud + 0.3 * np.sqrt(strength))
    return np.clip(v, 0.05, 1.0).astype(np.float32)


def _in_range(
    post: Posteriors, options: DecodeOptions
) -> tuple[int, npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """The column of options.min_pitch, and the note and onset posteriors cut to the pitch range."""
    lo = max(0, options.min_pitch - MIDI_OFFSET)
    hi = min(post.note.shape[1], options.max_pitch - MIDI_OFFSET + 1)
    note = _boost_fundamentals(post.note, options) if options.harmonic_boost > 0 else post.note
    return lo, note[:, lo:hi], post.onset[:, lo:hi]


def _boost_fundamentals(x: npt.NDArray[np.float32], options: DecodeOptions) -> npt.NDArray[np.float32]:
    """The model hears low bass notes mostly through their partials: below `harmonic_below`, add
    `harmonic_boost` times the weaker of a pitch's 2nd and 3rd partials (+12 and +19 semitones).
    Requiring the 3rd partial keeps a note's upper octave from lending its octave below the boost."""
    out = x.copy()
    top = min(options.harmonic_below - MIDI_OFFSET, x.shape[1] - 19)
    if top <= 0:
        return out
    evidence = np.minimum(x[:, 12 : top + 12], x[:, 19 : top + 19])
    out[:, :top] = np.minimum(1.0, x[:, :top] + options.harmonic_boost * evidence)
    return out


def _weak_runs_with_strong_onsets(
    note: npt.NDArray[np.float32],
    onset: npt.NDArray[np.float32],
    active: npt.NDArray[np.bool_],
    options: DecodeOptions,
) -> npt.NDArray[np.bool_]:
    """(T, P) runs of a pitch above `WEAK_FRAME_RATIO` x the frame threshold that hold an onset peak
    of at least `strong_onset` where the pitch is not yet active: the top strings of a strum, which
    the onset head hears clearly while their frame posterior stays low."""
    n = note.shape[0]
    weak = _close_gaps(note >= WEAK_FRAME_RATIO * options.frame_threshold, options.gap_frames)
    strong = _peaks(onset, options.strong_onset) & ~active & weak
    if not strong.any():
        return np.zeros_like(active)
    first = weak & ~np.vstack([np.zeros((1, weak.shape[1]), bool), weak[:-1]])
    run = np.cumsum(first, axis=0) + np.arange(weak.shape[1])[None, :] * (n + 1)
    has_strong = np.bincount(run[strong], minlength=int(run.max()) + 1) > 0
    return weak & has_strong[run]


def _release_ends(
    note: npt.NDArray[np.float32],
    start: npt.NDArray[np.int64],
    after: npt.NDArray[np.int64],
    col: npt.NDArray[np.int64],
    end: npt.NDArray[np.int64],
    options: DecodeOptions,
) -> npt.NDArray[np.int64]:
    """`end` where each note (from frame `start`, at column `col` of the frame posterior `note`) also
    ends once its posterior, from frame `after` on, falls below `options.offset_ratio` of its peak over
    its first frames: release tails and reverb that the frame threshold alone leaves on. Thresholds are
    bucketed so every bucket is one vectorised pass over only the pitches its notes are at."""
    if options.offset_ratio <= 0 or start.size == 0:
        return end
    n = note.shape[0]
    t = np.clip(start[:, None] + np.arange(6)[None, :], 0, n - 1)
    peak = note[t, col[:, None]].max(axis=1)
    levels = np.arange(options.frame_threshold, 0.951, 0.05)
    bucket = np.clip(
        np.searchsorted(levels, options.offset_ratio * peak, side="right") - 1, 0, levels.size - 1
    )
    end = end.copy()
    for k in np.unique(bucket):
        sel = bucket == k
        if levels[k] <= options.frame_threshold:
            continue
        cols = np.unique(col[sel])
        below = _next_index(_close_gaps(note[:, cols] >= levels[k], options.gap_frames) == 0)
        end[sel] = np.minimum(end[sel], below[np.clip(after[sel], 0, n - 1), np.searchsorted(cols, col[sel])])
    return end


def decode_polyphonic(
    post: Posteriors, loudness: npt.NDArray[np.float32], options: DecodeOptions = DecodeOptions()
) -> NoteArrays:
    """Polyphonic notes from `post`; `loudness` is (n_frames,) from `frame_loudness`."""
    n = post.n_frames
    if n < 2:
        return NoteArrays.empty()
    lo, note, onset = _in_range(post, options)
    if options.infer_onsets:
        # basic-pitch's trick: a sharp rise of the frame posterior is an onset the onset head missed.
        rise = np.vstack([np.zeros((2, note.shape[1]), np.float32), note[2:] - note[:-2]])
        onset = np.maximum(onset, np.clip(rise, 0.0, None) * (onset.max() / max(float(rise.max()), 1e-6)))
    active = _close_gaps(note >= options.frame_threshold, options.gap_frames)
    # The onset head often peaks a frame or three before the frame posterior rises: an onset
    # opens a note when the pitch becomes active within `LOOKAHEAD` frames.
    if options.strong_onset > 0:
        active = active | _weak_runs_with_strong_onsets(note, onset, active, options)
    next_active = _next_index(active)
    peaks = _peaks(onset, options.onset_threshold)
    peaks &= (next_active - np.arange(n)[:, None]) <= LOOKAHEAD
    t0, p = np.nonzero(peaks)
    if t0.size == 0:
        return NoteArrays.empty()
    next_off = _next_index(~active)
    next_on = _next_index(np.vstack([peaks[1:], np.zeros((1, peaks.shape[1]), bool)]))
    # A note ends at the first silent frame after it became active, or where the next onset at its
    # pitch starts.
    after = np.minimum(next_active[t0, p] + 1, n - 1)
    end = np.minimum(next_off[after, p], next_on[t0, p] + 1)
    end = _release_ends(note, t0, after, p, end, options)
    end = np.minimum(end, n)
    keep = (end - t0) >= options.min_frames
    t0, p, end = t0[keep], p[keep], end[keep]
    vel = _velocities(post, loudness, t0, p + lo)
    notes = NoteArrays(t0, end, p + lo + MIDI_OFFSET, vel)
    if options.harmonic_ratio > 0:
        notes = notes.select(~_harmonic_ghosts(post, notes, options.harmonic_ratio))
    order = np.lexsort((notes.pitch, notes.start))
    return NoteArrays(notes.start[order], notes.end[order], notes.pitch[order], notes.velocity[order])


# Intervals (semitones) of the 2nd..6th partials above a fundamental.
_PARTIALS = np.array([12, 19, 24, 28, 31])


def _onset_strength(post: Posteriors, notes: NoteArrays) -> npt.NDArray[np.float32]:
    """(n_notes,) the note posterior's peak over each note's first four frames."""
    t = np.clip(notes.start[:, None] + np.arange(4)[None, :], 0, post.n_frames - 1)
    return post.note[t, (notes.pitch - MIDI_OFFSET)[:, None]].max(axis=1)


def pairs_within(
    a: npt.NDArray[np.int64], b: npt.NDArray[np.int64], tol: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Index pairs (i, j) with |a[i] - b[j]| <= tol: sorted search, memory linear in the pairs found."""
    if a.size == 0 or b.size == 0:
        z = np.zeros(0, dtype=np.int64)
        return z, z.copy()
    order = np.argsort(b, kind="stable")
    sb = b[order]
    lo = np.searchsorted(sb, a - tol, side="left")
    hi = np.searchsorted(sb, a + tol, side="right")
    counts = hi - lo
    i = np.repeat(np.arange(a.size), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return i, order[np.repeat(lo, counts) + offsets]


def _harmonic_ghosts(post: Posteriors, notes: NoteArrays, ratio: float) -> npt.NDArray[np.bool_]:
    """(n_notes,) True for notes that sit on a partial of a much stronger note starting with them."""
    if len(notes) < 2:
        return np.zeros(len(notes), dtype=bool)
    strength = _onset_strength(post, notes)
    i, j = pairs_within(notes.start, notes.start, 3)  # i: the candidate ghost, j: its fundamental
    ghost = np.isin(notes.pitch[i] - notes.pitch[j], _PARTIALS) & (strength[i] < ratio * strength[j])
    out = np.zeros(len(notes), dtype=bool)
    out[i[ghost]] = True
    return out


def ends_from_frames(
    frame: npt.NDArray[np.floating[Any]],
    notes: NoteArrays,
    options: DecodeOptions,
    *,
    line: bool = False,
) -> NoteArrays:
    """`notes` (found by another decoder) ending where the (n_frames, 88) frame posterior `frame` hears
    them end: where it falls below `options.frame_threshold` after the note became active there, or
    below `options.offset_ratio` of its peak (`_release_ends`), at least `min_frames` long and never
    past the next note at the same pitch (`line`: the next note of the line). A note that `frame` does
    not hear within `LOOKAHEAD` + 3 frames of its start keeps its own end."""
    if len(notes) == 0:
        return notes
    n = frame.shape[0]
    col = np.clip(notes.pitch - MIDI_OFFSET, 0, frame.shape[1] - 1)
    cols, idx = np.unique(col, return_inverse=True)
    sub = np.asarray(frame[:, cols], dtype=np.float32)
    active = _close_gaps(sub >= options.frame_threshold, options.gap_frames)
    start = np.clip(notes.start, 0, n - 1)
    first = _next_index(active)[start, idx]  # where the posterior first holds the note
    heard = first - start <= LOOKAHEAD + 3
    after = np.minimum(first + 1, n - 1)
    end = _next_index(~active)[after, idx]
    end = _release_ends(sub, start, after, idx, end, options)
    end = np.maximum(end, notes.start + options.min_frames)
    end = np.where(heard, end, notes.end)
    # The next note at the same pitch (or of the line) starts where this one must have ended.
    order = np.lexsort((notes.start, notes.pitch)) if not line else np.argsort(notes.start, kind="stable")
    following = np.full(len(notes), np.iinfo(np.int64).max, np.int64)
    s_sorted, p_sorted = notes.start[order], notes.pitch[order]
    same = np.ones(len(order) - 1, bool) if line else p_sorted[1:] == p_sorted[:-1]
    following[order[:-1]] = np.where(same, s_sorted[1:], following[order[:-1]])
    end = np.minimum(np.minimum(end, following), n)
    end = np.maximum(end, notes.start + 1)
    return NoteArrays(notes.start, end.astype(np.int64), notes.pitch, notes.velocity)


def _median_filter_1d(x: npt.NDArray[np.float64], width: int) -> npt.NDArray[np.float64]:
    from scipy.ndimage import median_filter

    return median_filter(x, size=width, mode="nearest")


def decode_monophonic(
    post: Posteriors, loudness: npt.NDArray[np.float32], options: DecodeOptions = DecodeOptions()
) -> NoteArrays:
    """At most one note at a time, within options' pitch range, without octave jumps."""
    n = post.n_frames
    if n < 2:
        return NoteArrays.empty()
    lo, note, onset = _in_range(post, options)
    best = note.argmax(axis=1)
    salience = note[np.arange(n), best]
    voiced = _close_gaps((salience >= options.frame_threshold)[:, None], options.gap_frames)[:, 0]

    # Fold octave errors onto the local pitch track (median over ~0.35 s of voiced frames).
    filled = np.where(
        voiced, best, np.interp(np.arange(n), np.flatnonzero(voiced), best[voiced]) if voiced.any() else 0
    )
    local = _median_filter_1d(filled.astype(np.float64), 31)
    for shift in (12, -12):
        cand = best + shift
        ok = voiced & (cand >= 0) & (cand < note.shape[1]) & (np.abs(cand - local) < np.abs(best - local) - 6)
        cand_sal = note[np.arange(n), np.clip(cand, 0, note.shape[1] - 1)]
        switch = ok & (cand_sal >= 0.25 * salience)
        best = np.where(switch, cand, best)
    # Smooth one- and two-frame pitch flickers.
    best = np.rint(_median_filter_1d(best.astype(np.float64), 5)).astype(np.int64)
    best = np.where(voiced, best, -1)

    col = np.clip(best, 0, note.shape[1] - 1)
    frames = np.arange(n)
    prev = np.concatenate([[-1], best[:-1]])
    hard = best != prev  # pitch changes and voicing changes
    seg_start = np.maximum.accumulate(np.where(hard, frames, 0))
    # A re-attack on the same pitch needs a strong onset peak well inside the note and a frame
    # posterior that rises again: not the onset head's echo on a decaying or vibrato note.
    on_here = onset[frames, col]
    before = note[np.clip(frames - 3, 0, n - 1), col]
    after = note[np.clip(frames + 3, 0, n - 1), col]
    reattack = (
        _peaks(on_here[:, None], options.repeat_onset)[:, 0]
        & voiced
        & (after >= options.reattack_rise * before)
        & (frames - seg_start >= 2 * options.min_frames)
    )
    swell = np.zeros(n, dtype=np.bool_)
    if options.reattack_db > 0:
        swell = _swell_reattacks(loudness, onset, col, voiced, seg_start, options) & ~hard
        reattack = reattack | swell
    boundary = hard | reattack
    starts = np.flatnonzero(boundary & voiced)
    change = np.flatnonzero(boundary)
    # Each segment ends at the next boundary (pitch change, re-attack or silence).
    nxt = np.searchsorted(change, starts, side="right")
    ends = np.where(nxt < change.size, change[np.minimum(nxt, change.size - 1)], n)
    pitch_idx = best[starts]
    starts, ends, pitch_idx = _merge_repeats(onset, starts, ends, pitch_idx, options, swell)
    keep = (ends - starts) >= options.min_frames
    starts, ends, pitch_idx = starts[keep], ends[keep], pitch_idx[keep]
    fixed = swell[starts]  # a swell boundary is already at the attack: no backtracking
    moved, ends = _backtrack_onsets(onset, starts, ends, pitch_idx, options.backtrack_frames)
    starts = np.where(fixed, starts, moved)
    if options.rise_level > 0:
        moved, ends = _backtrack_rise(
            note, starts, ends, pitch_idx, options.backtrack_frames, options.rise_level
        )
        starts = np.where(fixed, starts, moved)
    vel = _velocities(post, loudness, starts, pitch_idx + lo)
    return NoteArrays(starts.astype(np.int64), ends.astype(np.int64), (pitch_idx + lo + MIDI_OFFSET), vel)


def _swell_reattacks(
    loudness: npt.NDArray[np.float32],
    onset: npt.NDArray[np.float32],
    col: npt.NDArray[np.int64],
    voiced: npt.NDArray[np.bool_],
    seg_start: npt.NDArray[np.int64],
    options: DecodeOptions,
) -> npt.NDArray[np.bool_]:
    """Re-attacks of a held pitch that sung and bowed notes hide from the onset head: the level
    sags as the old note releases and swells by `reattack_db` dB as the new one comes in, and the
    onset head peaks as for a real repeat (`repeat_onset`) from two frames before the bottom of the
    sag to six after. The boundary goes at the bottom of the sag."""
    n = loudness.shape[0]
    frames = np.arange(n)
    db = loudness.astype(np.float64) * 60.0
    bottom = _peaks(-db[:, None], -np.inf)[:, 0] & voiced & (frames - seg_start >= 2 * options.min_frames)
    cand = np.flatnonzero(bottom)
    if cand.size == 0:
        return np.zeros(n, dtype=np.bool_)
    ahead = np.clip(cand[:, None] + np.arange(1, 9)[None, :], 0, n - 1)
    swell = db[ahead].max(axis=1) - db[cand]
    near = np.clip(cand[:, None] + np.arange(-2, 7)[None, :], 0, n - 1)
    peak = onset[near, col[cand][:, None]].max(axis=1)
    ok = (swell >= options.reattack_db) & (peak >= options.repeat_onset)
    out = np.zeros(n, dtype=np.bool_)
    out[cand[ok]] = True
    return out


def _merge_repeats(
    onset: npt.NDArray[np.float32],
    starts: npt.NDArray[np.int64],
    ends: npt.NDArray[np.int64],
    pitch_idx: npt.NDArray[np.int64],
    options: DecodeOptions,
    keep: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Join consecutive segments of one pitch split by a flicker or a short dropout, unless the
    later one starts with a strong onset (a real repeated note) or at a frame marked in `keep`
    (a boundary already judged a repeat)."""
    if starts.size < 2:
        return starts, ends, pitch_idx
    near = np.clip(starts[:, None] + np.arange(-2, 3)[None, :], 0, onset.shape[0] - 1)
    strong = onset[near, pitch_idx[:, None]].max(axis=1) >= options.repeat_onset
    long_enough = np.concatenate([[True], starts[1:] - starts[:-1] >= 2 * options.min_frames])
    join = np.concatenate(
        [[False], (pitch_idx[1:] == pitch_idx[:-1]) & (starts[1:] - ends[:-1] <= options.gap_frames + 2)]
    )
    join &= ~(strong & long_enough) & ~keep[starts]
    group = np.cumsum(~join) - 1
    first = np.flatnonzero(~join)
    last_end = np.zeros(first.size, dtype=np.int64)
    np.maximum.at(last_end, group, ends)
    return starts[first], last_end, pitch_idx[first]


def _backtrack_rise(
    note: npt.NDArray[np.float32],
    starts: npt.NDArray[np.int64],
    ends: npt.NDArray[np.int64],
    pitch_idx: npt.NDArray[np.int64],
    reach: int,
    level: float,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Move each start back to where its pitch's frame posterior began its climb above `level`.

    For slow attacks (choirs, pads) even the onset head fires late; the note's own posterior starts
    rising at the attack. Like `_backtrack_onsets`, it shortens the previous note to make room.
    """
    if starts.size == 0 or reach <= 0:
        return starts, ends
    offsets = np.arange(-reach, 1)
    idx = np.clip(starts[:, None] + offsets[None, :], 0, note.shape[0] - 1)
    prev_start = np.concatenate([[-(10**9)], starts[:-1]])
    above = (note[idx, pitch_idx[:, None]] >= level) & (idx >= (prev_start + 4)[:, None])
    # The climb is the run of frames above `level` that ends at the current start.
    below_rev = ~above[:, ::-1]
    run = np.where(below_rev.any(axis=1), np.argmax(below_rev, axis=1), above.shape[1])
    new_starts = np.minimum(starts, starts - np.maximum(run - 1, 0)).astype(np.int64)
    new_ends = ends.copy()
    new_ends[:-1] = np.minimum(ends[:-1], new_starts[1:])
    return new_starts, new_ends


def _backtrack_onsets(
    onset: npt.NDArray[np.float32],
    starts: npt.NDArray[np.int64],
    ends: npt.NDArray[np.int64],
    pitch_idx: npt.NDArray[np.int64],
    reach: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Move each start back to the onset posterior's peak at its pitch within `reach` frames.

    Slow attacks (choirs, strings, pads) and legato pitch changes cross into the frame posterior
    late; the onset head fires at the true attack. The previous note is shortened to make room,
    but keeps at least a few frames. Returns the new (starts, ends).
    """
    if starts.size == 0 or reach <= 0:
        return starts, ends
    offsets = np.arange(-reach, 1)
    idx = np.clip(starts[:, None] + offsets[None, :], 0, onset.shape[0] - 1)
    prev_start = np.concatenate([[-(10**9)], starts[:-1]])
    allowed = idx >= (prev_start + 4)[:, None]
    values = np.where(allowed, onset[idx, pitch_idx[:, None]], -1.0)
    best = np.argmax(values, axis=1)
    rows = np.arange(starts.size)
    new_starts = np.where(values[rows, best] >= 0.2, idx[rows, best], starts).astype(np.int64)
    new_ends = ends.copy()
    new_ends[:-1] = np.minimum(ends[:-1], new_starts[1:])
    return new_starts, new_ends


def pitch_bends(
    post: Posteriors, notes: NoteArrays, *, step: int = 2
) -> list[tuple[tuple[float, float], ...]]:
    """Per note, (time s, semitones) bend samples from the 3-bins-per-semitone contour posterior."""
    out: list[tuple[tuple[float, float], ...]] = []
    bins = post.contour.shape[1]
    offsets = np.arange(-4, 5)  # +-4 contour bins = +-1.33 semitones around the note
    for s, e, p in zip(notes.start.tolist(), notes.end.tolist(), notes.pitch.tolist(), strict=True):
        frames = np.arange(s, e, step)
        centre = 3 * (p - MIDI_OFFSET) + 1
        cols = np.clip(centre + offsets, 0, bins - 1)
        w = post.contour[frames[:, None], cols[None, :]]
        dev = (w * offsets[None, :]).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-6) / 3.0
        if np.abs(dev).max(initial=0.0) < 0.15:
            out.append(())
            continue
        out.append(
            tuple((float(t), round(float(d), 3)) for t, d in zip(frame_times(frames), dev, strict=True))
        )
    return out


def to_events(
    notes: NoteArrays, bends: list[tuple[tuple[float, float], ...]] | None = None
) -> list[NoteEvent]:
    """NoteEvents in seconds, sorted by start then pitch."""
    starts = frame_times(notes.start)
    ends = frame_times(notes.end)
    events = [
        NoteEvent(int(p), float(s), float(e), float(v), bends[i] if bends else ())
        for i, (p, s, e, v) in enumerate(
            zip(notes.pitch.tolist(), starts.tolist(), ends.tolist(), notes.velocity.tolist(), strict=True)
        )
    ]
    events.sort(key=lambda n: (n.start, n.pitch))
    return events
