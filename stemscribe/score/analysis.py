"""What a score needs beyond the notes: metre, downbeats and bars, key, and chord symbols.

Everything is computed from a Result's notes and its beat grid (`stemscribe.score.grid.BeatMap`), in beat
units, with array code only; a 10-minute song takes well under a second.

- Metre: per beat, accents from the notes (onsets, long notes, bass onsets, kick, crash, snare as a
  backbeat) and from the harmony (how much the pitch classes change at the beat). Each grouping m in
  (2, 3, 4) and phase p is scored by how much the beats p, p + m, ... stand out; 2/4 needs the half bar to
  be as strong as the bar (a 4/4 with a strong third beat stays 4/4). Onsets on thirds of the beat make a
  two-beat bar 6/8 (a four-beat one stays 4/4: swing, written with triplets).
- Key: a key-finding profile (Temperley's Kostka-Payne profile by default, Krumhansl-Kessler as an
  option) correlated with the duration-weighted pitch-class histogram (bass notes count 1.5 times), plus
  a small bonus for keys whose tonic triad the chords spend time on.
- Chords: a chroma per beat (duration-weighted pitch classes, bass apart), matched against 11 chord
  qualities on 12 roots, smoothed with a Viterbi pass whose change penalty is lowest at bar lines; each
  span is then named from its summed chroma, and given a slash bass when the bass dwells on another
  chord tone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from stemscribe.score.grid import BeatMap
from stemscribe.stems import Family

if TYPE_CHECKING:
    from stemscribe.result import Result

SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
FLAT_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
# The spelling used where the key does not decide (no key, C major, A minor).
PLAIN_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
# The tonic spelling of each key (by tonic pitch class), the one with the fewer accidentals.
MAJOR_TONICS = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MINOR_TONICS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")
FLAT_MAJOR = frozenset({1, 3, 5, 8, 10})  # Db Eb F Ab Bb
FLAT_MINOR = frozenset({0, 2, 3, 5, 7, 10})  # C D Eb F G Bb minor

PROFILES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    # (major, minor), tonic first.
    "krumhansl": (
        (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88),
        (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17),
    ),
    "temperley": (
        (0.748, 0.060, 0.488, 0.082, 0.670, 0.460, 0.096, 0.715, 0.104, 0.366, 0.057, 0.400),
        (0.712, 0.084, 0.474, 0.618, 0.049, 0.460, 0.105, 0.747, 0.404, 0.067, 0.133, 0.330),
    ),
}


@dataclass(frozen=True, slots=True)
class Quality:
    """A chord quality: its mir_eval name, the suffix after the root, its intervals and a prior factor."""

    name: str
    suffix: str
    intervals: tuple[int, ...]
    prior: float
    music21_kind: str


QUALITIES: tuple[Quality, ...] = (
    Quality("maj", "", (0, 4, 7), 1.0, "major"),
    Quality("min", "m", (0, 3, 7), 1.0, "minor"),
    Quality("7", "7", (0, 4, 7, 10), 0.97, "dominant-seventh"),
    Quality("maj7", "maj7", (0, 4, 7, 11), 0.96, "major-seventh"),
    Quality("min7", "m7", (0, 3, 7, 10), 0.97, "minor-seventh"),
    Quality("dim", "dim", (0, 3, 6), 0.92, "diminished"),
    Quality("aug", "aug", (0, 4, 8), 0.85, "augmented"),
    Quality("sus4", "sus4", (0, 5, 7), 0.88, "suspended-fourth"),
    Quality("sus2", "sus2", (0, 2, 7), 0.85, "suspended-second"),
    Quality("hdim7", "m7b5", (0, 3, 6, 10), 0.93, "half-diminished-seventh"),
    Quality("dim7", "dim7", (0, 3, 6, 9), 0.9, "diminished-seventh"),
)
QUALITY_BY_NAME = {q.name: q for q in QUALITIES}
# Interval above the root -> mir_eval scale degree, for slash basses.
DEGREES = ("1", "b2", "2", "b3", "3", "4", "b5", "5", "#5", "6", "b7", "7")

KICKS = frozenset({35, 36})
SNARES = frozenset({37, 38, 39, 40})
CRASHES = frozenset({49, 52, 55, 57})
ONSET_RADIUS = 0.15  # beats: an onset this close to a beat accents it


@dataclass(frozen=True, slots=True)
class TimeSignature:
    numerator: int
    denominator: int

    @property
    def compound(self) -> bool:
        return self.denominator == 8 and self.numerator % 3 == 0

    @property
    def beats_per_bar(self) -> int:
        """Beats of the grid in one bar (6/8 has two, dotted quarters)."""
        return self.numerator // 3 if self.compound else self.numerator

    @property
    def beat_quarters(self) -> float:
        """Quarter notes in one beat of the grid: 1.5 in compound metres."""
        return 1.5 if self.compound else 4.0 / self.denominator

    def __str__(self) -> str:
        return f"{self.numerator}/{self.denominator}"


@dataclass(frozen=True, slots=True)
class Key:
    tonic: int  # pitch class, 0 = C
    mode: str  # "major" or "minor"

    @property
    def tonic_name(self) -> str:
        return (MAJOR_TONICS if self.mode == "major" else MINOR_TONICS)[self.tonic]

    @property
    def uses_flats(self) -> bool:
        return self.tonic in (FLAT_MAJOR if self.mode == "major" else FLAT_MINOR)

    @property
    def sharps(self) -> int:
        """Sharps (> 0) or flats (< 0) of the key signature."""
        major = self.tonic if self.mode == "major" else (self.tonic + 3) % 12
        fifths = (major * 7) % 12
        n = fifths if fifths <= 6 else fifths - 12
        if n == 6 and MAJOR_TONICS[major].endswith("b"):
            n = -6
        return n

    def __str__(self) -> str:
        return f"{self.tonic_name} {self.mode}"


@dataclass(frozen=True, slots=True)
class ChordSpan:
    """One chord symbol over [start, end) seconds; `root` and `bass` are pitch classes."""

    start: float
    end: float
    symbol: str
    root: int
    quality: str  # a Quality name: maj, min, 7, maj7, min7, dim, aug, sus4, sus2, hdim7, dim7
    bass: int

    @property
    def mirex(self) -> str:
        """The chord in mir_eval's syntax ("G:maj/3"), root spelled with sharps."""
        label = f"{SHARP_NAMES[self.root]}:{self.quality}"
        if self.bass != self.root:
            label += "/" + DEGREES[(self.bass - self.root) % 12]
        return label

    def to_dict(self) -> dict[str, float | str]:
        return {"start": round(self.start, 6), "end": round(self.end, 6), "symbol": self.symbol}


@dataclass(frozen=True, slots=True)
class ScoreAnalysis:
    """Metre, bar lines, key and chords of a Result.

    `beats` are the grid's beat times in seconds from beat 0 (at 0 s, see BeatMap) to the one after the
    end; `first_downbeat` is the beat index of the first bar line (beats before it are a pickup, bar 0).
    `downbeats` are the bar lines inside [0, duration). `key` is None when there are no pitched notes.
    """

    time_signature: TimeSignature
    downbeats: tuple[float, ...]
    key: Key | None
    chords: tuple[ChordSpan, ...]
    beats: tuple[float, ...]
    first_downbeat: int

    def bar_number(self, seconds: float) -> int:
        """The bar a time falls in: 1 from the first downbeat, 0 for a pickup before it."""
        beat = int(np.searchsorted(np.asarray(self.beats), seconds, side="right")) - 1
        return (max(beat, 0) - self.first_downbeat) // self.time_signature.beats_per_bar + 1

    def to_dict(self) -> dict[str, object]:
        """The JSON fields beside a Result's `tempo` and `beats`."""
        return {
            "time_signature": str(self.time_signature),
            "downbeats": [round(t, 6) for t in self.downbeats],
            "key": None if self.key is None else str(self.key),
            "chords": [c.to_dict() for c in self.chords],
        }


@dataclass(frozen=True, slots=True)
class AnalysisOptions:
    profile: str = "temperley"
    chord_bass_weight: float = 0.15
    # How much the share of time spent on a key's tonic triad adds to its correlation, and how much more
    # the first and last chords count (0: an excerpt need not start or end on the tonic). Chosen on the
    # dev split's reference notes (bench/sheet.py): larger values lose keys to the dominant.
    chord_key_weight: float = 0.15
    edge_weight: float = 0.0
    change_penalty: tuple[float, float, float] = (0.05, 0.15, 0.3)  # at bar lines, half bars, other beats


# ------------------------------------------------------------------------------------------------ notes


@dataclass(frozen=True, slots=True)
class _Notes:
    """Pitched notes in beat units: pitch, start, end, velocity (n,), and whether each is a bass note."""

    pitch: npt.NDArray[np.int64]
    start: npt.NDArray[np.float64]
    end: npt.NDArray[np.float64]
    velocity: npt.NDArray[np.float64]
    bass: npt.NDArray[np.bool_]


def _pitched_notes(result: Result, beat_map: BeatMap) -> _Notes:
    rows: list[tuple[int, float, float, float, bool]] = []
    has_bass = any(i.family is Family.BASS and i.notes for i in result.instruments if not i.is_drum)
    for inst in result.instruments:
        if inst.is_drum or inst.family is Family.DRUMS:
            continue
        is_bass = inst.family is Family.BASS
        rows.extend((n.pitch, n.start, n.end, n.velocity, is_bass) for n in inst.notes if n.end > n.start)
    if not rows:
        empty = np.zeros(0)
        return _Notes(empty.astype(np.int64), empty, empty, empty, empty.astype(bool))
    pitch = np.array([r[0] for r in rows], dtype=np.int64)
    start = beat_map.to_beats([r[1] for r in rows])
    end = np.maximum(beat_map.to_beats([r[2] for r in rows]), start + 1.0 / 64)
    velocity = np.array([r[3] for r in rows], dtype=np.float64)
    bass = np.array([r[4] for r in rows], dtype=bool) if has_bass else pitch < 48
    return _Notes(pitch, start, end, velocity, bass)


def _drum_onsets(result: Result, beat_map: BeatMap) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    hits = [(n.pitch, n.start) for i in result.instruments if i.is_drum for n in i.notes]
    if not hits:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    return np.array([h[0] for h in hits], dtype=np.int64), beat_map.to_beats([h[1] for h in hits])


def _beat_overlaps(
    start: npt.NDArray[np.float64], end: npt.NDArray[np.float64], n_beats: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """(note index, beat index, overlap in beats) for every beat each note sounds in, inside [0, n_beats)."""
    k0 = np.floor(start).astype(np.int64)
    k1 = np.maximum(np.ceil(end).astype(np.int64), k0 + 1)
    counts = k1 - k0
    note = np.repeat(np.arange(start.size), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    beat = np.repeat(k0, counts) + (np.arange(note.size) - first)
    overlap = np.minimum(end[note], beat + 1.0) - np.maximum(start[note], beat.astype(np.float64))
    keep = (beat >= 0) & (beat < n_beats) & (overlap > 0)
    return note[keep], beat[keep], overlap[keep]


def _chromas(notes: _Notes, n_beats: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(n_beats, 12) duration-weighted pitch classes of all notes, and (n_beats, 12) of the bass line.

    The bass line is the bass notes where there are any in the beat, else the lowest note held for at
    least a quarter of the beat.
    """
    chroma = np.zeros((n_beats, 12))
    bass = np.zeros((n_beats, 12))
    if notes.pitch.size == 0:
        return chroma, bass
    note, beat, overlap = _beat_overlaps(notes.start, notes.end, n_beats)
    pc = notes.pitch[note] % 12
    np.add.at(chroma, (beat, pc), overlap)
    is_bass = notes.bass[note]
    np.add.at(bass, (beat[is_bass], pc[is_bass]), overlap[is_bass])
    held = overlap >= 0.25
    lowest = np.full(n_beats, 1000, dtype=np.int64)
    np.minimum.at(lowest, beat[held], notes.pitch[note][held])
    empty = (bass.sum(axis=1) == 0) & (lowest < 1000)
    rows = np.flatnonzero(empty)
    bass[rows, lowest[rows] % 12] = 1.0
    return chroma, bass


# ------------------------------------------------------------------------------------------------ metre


def _near_beats(
    positions: npt.NDArray[np.float64], weights: npt.NDArray[np.float64], n_beats: int
) -> npt.NDArray[np.float64]:
    """(n_beats,) sum of the weights of onsets within ONSET_RADIUS of each beat."""
    out = np.zeros(n_beats)
    if positions.size == 0:
        return out
    nearest = np.rint(positions).astype(np.int64)
    keep = (np.abs(positions - nearest) < ONSET_RADIUS) & (nearest >= 0) & (nearest < n_beats)
    np.add.at(out, nearest[keep], weights[keep])
    return out


def _accents(
    notes: _Notes,
    drum_pitch: npt.NDArray[np.int64],
    drum_pos: npt.NDArray[np.float64],
    chroma: npt.NDArray[np.float64],
    n_beats: int,
) -> list[tuple[float, npt.NDArray[np.float64]]]:
    """(weight, (n_beats,) feature) pairs; a positive weight marks a feature that is strong on bar lines."""
    length = np.minimum(notes.end - notes.start, 4.0)
    features: list[tuple[float, npt.NDArray[np.float64]]] = [
        (0.5, _near_beats(notes.start, notes.velocity, n_beats)),
        (0.7, _near_beats(notes.start, length, n_beats)),
        (1.0, _near_beats(notes.start[notes.bass], length[notes.bass], n_beats)),
    ]
    for group, weight in ((KICKS, 1.0), (CRASHES, 0.5), (SNARES, -0.7)):
        pos = drum_pos[np.isin(drum_pitch, list(group))]
        features.append((weight, _near_beats(pos, np.ones(pos.size), n_beats)))
    # Harmonic change: pitch classes of the two beats from here against the two before.
    if n_beats >= 2:
        padded = np.vstack([np.zeros((2, 12)), chroma, np.zeros((2, 12))])
        after = padded[2:-2] + padded[3:-1]
        before = padded[1:-3] + padded[:-4]
        norm = np.linalg.norm(after, axis=1) * np.linalg.norm(before, axis=1)
        cos = np.where(norm > 0, (after * before).sum(axis=1) / np.maximum(norm, 1e-12), 1.0)
        sounding = chroma.sum(axis=1) > 0
        features.append((1.5, np.where(sounding, 1.0 - cos, 0.0)))
    return features


def _contrast(
    features: list[tuple[float, npt.NDArray[np.float64]]], m: int, n_beats: int
) -> npt.NDArray[np.float64]:
    """(m,) how much the beats of each phase stand out over the others, summed over the features."""
    phase = np.arange(n_beats) % m
    out = np.zeros(m)
    for weight, f in features:
        spread = float(f.std())
        if spread <= 1e-9:
            continue
        for p in range(m):
            inside = phase == p
            out[p] += weight * (float(f[inside].mean()) - float(f[~inside].mean())) / spread
    return out


def _ternary(notes: _Notes, drum_pos: npt.NDArray[np.float64]) -> bool:
    """Whether the off-beat onsets fall on thirds of the beat rather than halves and quarters."""
    pos = np.concatenate([notes.start, drum_pos])
    frac = pos - np.floor(pos)
    off = frac[(frac > 0.1) & (frac < 0.9)]
    if off.size < 4:
        return False
    thirds = np.sum((np.abs(off - 1 / 3) < 0.06) | (np.abs(off - 2 / 3) < 0.06))
    halves = np.sum((np.abs(off - 0.5) < 0.06) | (np.abs(off - 0.25) < 0.05) | (np.abs(off - 0.75) < 0.05))
    return bool(thirds > 2 * halves and thirds >= 0.3 * off.size)


def _metre(
    features: list[tuple[float, npt.NDArray[np.float64]]],
    n_beats: int,
    ternary: bool,
    first_onset: int,
) -> tuple[TimeSignature, int]:
    """The time signature and the beat index of the first bar line (< beats per bar)."""
    if n_beats < 6:
        return TimeSignature(4, 4), first_onset % 4 if first_onset >= 0 else 0
    contrast = {m: _contrast(features, m, n_beats) for m in (2, 3, 4) if n_beats >= 2 * m}
    best = {m: float(c.max()) for m, c in contrast.items()}
    if max(best.values()) < 0.15:  # no accent pattern: 4/4 from the first note
        return TimeSignature(4, 4), max(first_onset, 0) % 4
    d2, d3, d4 = best.get(2, 0.0), best.get(3, -np.inf), best.get(4, -np.inf)
    duple_ratio = 1.15 if ternary else 1.4
    duple = max(d4, d2 / duple_ratio) if 4 in best else d2
    if d3 > 1.1 * duple:
        m = 3
    elif 4 in best and d2 <= duple_ratio * d4:
        m = 4
    else:
        m = 2
    phase = int(np.argmax(contrast[m]))
    if m == 2:
        return (TimeSignature(6, 8) if ternary else TimeSignature(2, 4)), phase
    return TimeSignature(m, 4), phase


# ------------------------------------------------------------------------------------------------ key


def _key_scores(histogram: npt.NDArray[np.float64], profile: str) -> npt.NDArray[np.float64]:
    """(24,) Pearson correlation of the histogram with the profile on each tonic: 12 major, then 12 minor."""
    major, minor = (np.asarray(p) for p in PROFILES[profile])
    out = np.zeros(24)
    h = histogram - histogram.mean()
    for mode, prof in enumerate((major, minor)):
        for tonic in range(12):
            p = np.roll(prof, tonic) - prof.mean()
            denom = float(np.linalg.norm(h) * np.linalg.norm(p))
            out[mode * 12 + tonic] = float(h @ p) / denom if denom > 0 else 0.0
    return out


def _key(
    notes: _Notes,
    chord_time: npt.NDArray[np.float64],
    profile: str,
    chord_weight: float,
) -> Key | None:
    """The key from the duration-weighted histogram (bass notes counted 1.5 times) and the chords.

    `chord_time` is (24,): beats spent on each major (0-11) and minor (12-23) triad root, any quality of
    that family.
    """
    if notes.pitch.size == 0:
        return None
    weight = np.minimum(notes.end - notes.start, 8.0) * np.where(notes.bass, 1.5, 1.0)
    histogram = np.bincount(notes.pitch % 12, weights=weight, minlength=12).astype(np.float64)
    if histogram.sum() <= 0:
        return None
    scores = _key_scores(histogram, profile)
    total = float(chord_time.sum())
    if total > 0:
        scores = scores + chord_weight * chord_time / total
    best = int(np.argmax(scores))
    return Key(best % 12, "major" if best < 12 else "minor")


# ------------------------------------------------------------------------------------------------ chords


def _templates() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(K, 12) unit-length chord templates, (K,) roots and (K,) quality indices; K = 12 * len(QUALITIES)."""
    rows, roots, kinds = [], [], []
    for qi, quality in enumerate(QUALITIES):
        base = np.zeros(12)
        for j, interval in enumerate(quality.intervals):
            base[interval] = 1.2 if j == 0 else (0.8 if j == 3 else 1.0)
        base /= np.linalg.norm(base)
        for root in range(12):
            rows.append(np.roll(base, root))
            roots.append(root)
            kinds.append(qi)
    return np.array(rows), np.array(roots), np.array(kinds)


def _emissions(
    chroma: npt.NDArray[np.float64], bass: npt.NDArray[np.float64], bass_weight: float
) -> npt.NDArray[np.float64]:
    """(n, K + 1) how well each chord (the last column: no chord) explains each row's chroma."""
    templates, roots, kinds = _templates()
    priors = np.array([QUALITIES[k].prior for k in kinds])
    norm = np.linalg.norm(chroma, axis=1, keepdims=True)
    unit = np.divide(chroma, norm, out=np.zeros_like(chroma), where=norm > 0)
    bass_total = bass.sum(axis=1, keepdims=True)
    bass_share = np.divide(bass, bass_total, out=np.zeros_like(bass), where=bass_total > 0)
    tone = (templates > 0).astype(np.float64)
    bass_fit = bass_share[:, roots] + 0.6 * (bass_share @ tone.T - bass_share[:, roots])
    scores = (unit @ templates.T) * priors[None, :] + bass_weight * bass_fit
    silent = chroma.sum(axis=1) < 0.05
    scores[silent] = 0.0
    none = np.where(silent, 1.0, 0.0)[:, None]
    return np.hstack([scores, none])


def _viterbi(emissions: npt.NDArray[np.float64], penalty: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """(n,) best state path when staying is free and changing before row t costs penalty[t]."""
    n, k = emissions.shape
    back = np.zeros((n, k), dtype=np.int64)
    delta = emissions[0].copy()
    states = np.arange(k)
    for t in range(1, n):
        best = int(np.argmax(delta))
        switch = delta[best] - penalty[t]
        stay = delta >= switch
        back[t] = np.where(stay, states, best)
        delta = np.where(stay, delta, switch) + emissions[t]
    path = np.zeros(n, dtype=np.int64)
    path[-1] = int(np.argmax(delta))
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def _spell(pc: int, key: Key | None) -> str:
    if key is None or (key.tonic, key.mode) in ((0, "major"), (9, "minor")):
        return PLAIN_NAMES[pc]
    return (FLAT_NAMES if key.uses_flats else SHARP_NAMES)[pc]


def chord_symbol(root: int, quality: str, bass: int, key: Key | None = None) -> str:
    """A lead-sheet symbol ("Am7", "G/B", "Bbsus4"), roots spelled for the key."""
    symbol = _spell(root, key) + QUALITY_BY_NAME[quality].suffix
    if bass != root:
        symbol += "/" + _spell(bass, key)
    return symbol


@dataclass(frozen=True, slots=True)
class _Segment:
    first: int  # beat index
    last: int  # beat index, exclusive
    root: int
    quality: int  # index into QUALITIES, -1 for no chord
    bass: int


def _segments(
    chroma: npt.NDArray[np.float64],
    bass: npt.NDArray[np.float64],
    strength: npt.NDArray[np.int64],
    options: AnalysisOptions,
) -> list[_Segment]:
    """Chord segments over beats; `strength` is (n,) 0 on bar lines, 1 on half bars, 2 elsewhere."""
    n = chroma.shape[0]
    if n == 0 or chroma.sum() <= 0:
        return []
    _, roots, kinds = _templates()
    penalty = np.asarray(options.change_penalty)[strength]
    path = _viterbi(_emissions(chroma, bass, options.chord_bass_weight), penalty)
    none = len(roots)
    bounds = np.flatnonzero(np.diff(path)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [n]])
    segments: list[_Segment] = []
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        if path[s] == none:
            segments.append(_Segment(s, e, 0, -1, 0))
            continue
        total = chroma[s:e].sum(axis=0, keepdims=True)
        bass_total = bass[s:e].sum(axis=0, keepdims=True)
        state = int(np.argmax(_emissions(total, bass_total, options.chord_bass_weight)[0, :none]))
        root, kind = int(roots[state]), int(kinds[state])
        chord_bass = root
        if bass_total.sum() > 0 and bass[s].sum() > 0:
            # A slash bass: a chord tone other than the root, sounding at the chord's onset and for
            # most of the span (a bass alternating root and fifth stays in root position).
            top = int(np.argmax(bass_total[0]))
            tones = {(root + i) % 12 for i in QUALITIES[kind].intervals}
            at_onset = int(np.argmax(bass[s])) == top
            if top != root and top in tones and at_onset and bass_total[0, top] > 0.6 * bass_total.sum():
                chord_bass = top
        segments.append(_Segment(s, e, root, kind, chord_bass))
    merged: list[_Segment] = []
    for seg in segments:
        if merged and (merged[-1].root, merged[-1].quality, merged[-1].bass) == (
            seg.root,
            seg.quality,
            seg.bass,
        ):
            prev = merged.pop()
            seg = _Segment(prev.first, seg.last, seg.root, seg.quality, seg.bass)
        merged.append(seg)
    return merged


def _chord_time(segments: list[_Segment], edge_weight: float) -> npt.NDArray[np.float64]:
    """(24,) beats spent on major-family (0-11) and minor-family (12-23) chords of each root, the first
    and last chords counted `edge_weight` times their length more (songs start and end on the tonic)."""
    out = np.zeros(24)
    chords = [s for s in segments if s.quality >= 0]
    for i, seg in enumerate(chords):
        third = QUALITIES[seg.quality].intervals[1]
        if third in (3, 4) and QUALITIES[seg.quality].name not in ("dim", "hdim7", "dim7", "aug"):
            edge = edge_weight * ((i == 0) + (i == len(chords) - 1))
            out[seg.root + (12 if third == 3 else 0)] += (seg.last - seg.first) * (1.0 + edge)
    return out


# ------------------------------------------------------------------------------------------------ entry


def analyze(result: Result, options: AnalysisOptions | None = None) -> ScoreAnalysis:
    """Time signature, downbeats, key and chords of a transcription (see the module docstring)."""
    options = options or AnalysisOptions()
    beat_map = BeatMap.of(result)
    n_beats = beat_map.n_beats(result.duration)
    notes = _pitched_notes(result, beat_map)
    drum_pitch, drum_pos = _drum_onsets(result, beat_map)
    chroma, bass = _chromas(notes, n_beats)

    onsets = np.concatenate([notes.start, drum_pos])
    first_onset = int(np.rint(onsets.min())) if onsets.size else -1
    features = _accents(notes, drum_pitch, drum_pos, chroma, n_beats)
    signature, first_downbeat = _metre(features, n_beats, _ternary(notes, drum_pos), first_onset)

    per_bar = signature.beats_per_bar
    phase = (np.arange(n_beats) - first_downbeat) % per_bar
    strength = np.where(phase == 0, 0, np.where((per_bar == 4) & (phase == 2), 1, 2)).astype(np.int64)
    segments = _segments(chroma, bass, strength, options)
    key = _key(notes, _chord_time(segments, options.edge_weight), options.profile, options.chord_key_weight)

    beat_times = beat_map.to_seconds(np.arange(n_beats + 1))
    downbeats = tuple(float(t) for t in beat_times[first_downbeat::per_bar] if t < result.duration - 1e-6)
    chords = tuple(
        ChordSpan(
            float(beat_times[seg.first]),
            float(min(beat_times[seg.last], max(result.duration, beat_times[seg.first]))),
            chord_symbol(seg.root, QUALITIES[seg.quality].name, seg.bass, key),
            seg.root,
            QUALITIES[seg.quality].name,
            seg.bass,
        )
        for seg in segments
        if seg.quality >= 0
    )
    return ScoreAnalysis(
        time_signature=signature,
        downbeats=downbeats,
        key=key,
        chords=chords,
        beats=tuple(float(t) for t in beat_times),
        first_downbeat=first_downbeat,
    )
