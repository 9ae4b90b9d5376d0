"""What a score needs beyond the notes: metre, downbeats and bars, key, and chord symbols.

Everything is computed from a Result's notes and its beat grid (`stemscribe.score.grid.BeatMap`), in beat
units, with array code only; a 10-minute song takes well under a second.

- Metre: per beat, accents from the notes (onsets, long notes, bass onsets, kick, crash, snare as a
  backbeat) and from the harmony (how much the pitch classes change at the beat). Each grouping m in
  (2, 3, 4) and phase p is scored by how much the beats p, p + m, ... stand out; 2/4 needs the half bar to
  be as strong as the bar (a 4/4 with a strong third beat stays 4/4). Onsets on thirds of the beat make a
  two-beat bar 6/8 (a four-beat one stays 4/4: swing, written with triplets). The bar lines then go
  where the same accents fit the chosen bar best with the harmonic change of one beat weighing more,
  and a bar line on the first note or on the beat after it (a one-beat pickup) weighing a little more
  where that note is on a beat: a piece starts on beat 1 or just before it; so, a little less, does
  each phrase that starts on a beat after a beat where nothing starts.
- Key: a key-finding profile (Temperley's Kostka-Payne profile by default, Krumhansl-Kessler as an
  option) correlated with the duration-weighted pitch-class histogram (bass notes count 1.5 times), plus
  a small bonus for keys whose tonic triad the chords spend time on and a penalty for those whose tonic
  triad the chords hardly touch.
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
    "temperley": (  # Temperley (2001), from the Kostka-Payne harmony textbook's excerpts
        (0.748, 0.060, 0.488, 0.082, 0.670, 0.460, 0.096, 0.715, 0.104, 0.366, 0.057, 0.400),
        (0.712, 0.084, 0.474, 0.618, 0.049, 0.460, 0.105, 0.747, 0.404, 0.067, 0.133, 0.330),
    ),
    "aarden": (  # Aarden (2003), from the Essen folk-song collection
        (
            17.7661,
            0.145624,
            14.9265,
            0.160186,
            19.8049,
            11.3587,
            0.291248,
            22.062,
            0.145624,
            8.15494,
            0.232998,
            4.95122,
        ),
        (
            18.2648,
            0.737619,
            14.0499,
            16.8599,
            0.702494,
            14.4362,
            0.702494,
            18.6161,
            4.56621,
            1.93186,
            7.37619,
            1.75623,
        ),
    ),  # fmt: skip
    "albrecht": (  # Albrecht and Shanahan (2013), from 982 pieces of the common-practice repertoire
        (0.238, 0.006, 0.111, 0.006, 0.137, 0.094, 0.016, 0.214, 0.009, 0.080, 0.008, 0.081),
        (0.220, 0.006, 0.104, 0.123, 0.019, 0.103, 0.012, 0.214, 0.062, 0.022, 0.061, 0.052),
    ),
    "bellman": (  # Bellman and Budge (2005), from chords of the common-practice repertoire
        (16.80, 0.86, 12.95, 1.41, 13.49, 11.93, 1.25, 20.28, 1.80, 8.04, 0.62, 10.57),
        (18.16, 0.69, 12.99, 13.34, 1.07, 11.15, 1.38, 21.07, 7.49, 1.53, 0.92, 10.21),
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
    chord_bass_weight: float = 0.15
    # Key (`_key`): the profile and how it is fitted, how much more bass notes count in the histogram and
    # how much metrical accent weighs the notes (`_metrical_weights`), and how much the harmony's
    # evidence adds to the fit (shares of the tonic triad's time, of the chord changes that are V-I
    # cadences into it, of the bar lines' bass on the tonic, and the first and last chords; 0: an excerpt
    # need not start or end on the tonic). Chosen on the dev split (bench/sheet.py): Aarden's profile
    # read as a likelihood gets the most keys right on the reference notes and on both engines' mixes;
    # the harmony only breaks near-ties (at 0.15 it hands I-IV-V songs to IV, whose triad they dwell on).
    # A key whose tonic triad holds less than `absent_tonic_share` of the chords' time loses
    # `absent_tonic_penalty`: a minor loop i-VII-VI-VII has the notes of its relative major but never
    # that major's tonic chord (on the dev split and both dev seeds any penalty from 0.05 up gives the
    # same keys; 0 reads such loops as the relative major).
    profile: str = "aarden"
    key_method: str = "likelihood"
    key_bass_weight: float = 1.5
    metrical_weight: float = 0.5
    chord_key_weight: float = 0.05
    cadence_weight: float = 0.05
    bass_key_weight: float = 0.05
    edge_weight: float = 0.0
    absent_tonic_penalty: float = 0.1
    absent_tonic_share: float = 0.05
    change_penalty: tuple[float, float, float] = (0.05, 0.15, 0.3)  # at bar lines, half bars, other beats
    # Metre (`_metre`): the harmonic-change accent (pitch classes of `harmony_span` beats against the
    # span before) and its weight; how much bar-period repetition counts beside the accent template fit;
    # by how much 3/4 and 2/4 (6/8 when the beat divides in three) must beat 4/4. On the dev split a
    # one-beat span reads the reference notes' chorales better and the mixes' swing worse.
    harmony_span: int = 2
    harmony_weight: float = 1.5
    repetition_weight: float = 1.0
    triple_margin: float = 0.1
    duple_margin: float = 0.3
    compound_margin: float = 0.1
    # Bar phase: once the bar length is chosen, the bar lines go where the accents fit its template with
    # the harmonic change of `phase_harmony_span` beats weighing `phase_harmony_weight` (the chords
    # change on beat 1 more reliably than the onsets and the bass accent it, which syncopated grooves
    # and chorales put elsewhere). Chosen on the dev split and dev seeds 7 and 11: mean mix and
    # reference-note downbeat F1 0.771 (the metre's own 1.5 and 2 beats) -> 0.823.
    phase_harmony_weight: float = 2.5
    phase_harmony_span: int = 1
    # A piece starts on a bar line or one beat before it (an anacrusis): where the first onset is on a
    # beat, those two phases gain `pickup_bonus` in the bar-phase fit (0: the accents alone). Chorales
    # are where it counts: their harmony changes on every beat and their phrases end on beat 3, so the
    # accents alone leave the bar line a half bar off. Chosen on the dev split and dev seeds 7 and 11
    # (without music001 and music004): mean mix downbeat F1 0.775 -> 0.804, reference notes 0.852 ->
    # 0.945, the same from 0.5 (mixes) or 0.7 (reference notes) to 0.9. An onset off the beat (a window
    # cut from a song's middle, a swung pickup) gives no bonus: with one, seed 7's shuffle, whose first
    # note is a swung eighth before beat 1, loses its bar line.
    pickup_bonus: float = 0.7
    # So does a phrase: where an onset on a beat follows a beat in which nothing starts (a rest, or every
    # part holding a phrase's last chord), that beat and the one after it gain `phrase_bonus` as bar
    # lines, each phrase once. Drum grooves never rest, so it moves chorales and tunes with rests only.
    # Chosen on the dev split and dev seeds 7 and 11 (36 songs): mean mix downbeat F1 0.860 -> 0.887
    # (one chorale's mix, bwv32.6, put half a bar off before), reference notes 0.945 unchanged, the
    # same from 0.1 to 0.3. Letting the bar phase change at such beats (irregular bars: a verse's
    # breath, a repeat's split bar) was tried as a Viterbi path over phases and is not done: with any
    # change cost it moves the bar lines of as many chorales off as it puts right (mixes 0.887 ->
    # 0.890 at best, reference notes 0.945 -> 0.960), not worth bars of uneven length in every writer.
    phrase_bonus: float = 0.2


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
    *,
    span: int = 2,
    harmony_weight: float = 1.5,
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
    # Harmonic change: pitch classes of the `span` beats from here against the `span` before.
    if n_beats >= 2:
        padded = np.vstack([np.zeros((span, 12)), chroma, np.zeros((span, 12))])
        after = np.sum([padded[span + k : span + k + n_beats] for k in range(span)], axis=0)
        before = np.sum([padded[span - 1 - k : span - 1 - k + n_beats] for k in range(span)], axis=0)
        norm = np.linalg.norm(after, axis=1) * np.linalg.norm(before, axis=1)
        cos = np.where(norm > 0, (after * before).sum(axis=1) / np.maximum(norm, 1e-12), 1.0)
        sounding = chroma.sum(axis=1) > 0
        features.append((harmony_weight, np.where(sounding, 1.0 - cos, 0.0)))
    return features


# Accent expected on each beat of a bar, downbeat first (the metrical grid of Lerdahl and Jackendoff: in
# 4/4 the half bar is the next strongest beat).
METRE_TEMPLATES: dict[int, tuple[float, ...]] = {
    2: (1.0, 0.3),
    3: (1.0, 0.3, 0.3),
    4: (1.0, 0.3, 0.65, 0.3),
}


def _fit(features: list[tuple[float, npt.NDArray[np.float64]]], m: int) -> npt.NDArray[np.float64]:
    """(m,) how well the accents match the m-beat template with the bar line on each phase.

    Each feature is standardised, averaged per beat of the bar (phase p = beats p, p + m, ...) and the
    profile projected on the zero-mean, unit-length template rolled to each phase; divided by sqrt(m),
    a feature that follows the template exactly scores its weight whatever the bar length.
    """
    template = np.asarray(METRE_TEMPLATES[m]) - np.mean(METRE_TEMPLATES[m])
    template /= np.linalg.norm(template)
    out = np.zeros(m)
    for weight, f in features:
        spread = float(f.std())
        if spread <= 1e-9 or f.size < m:
            continue
        z = (f - f.mean()) / spread
        folded = np.bincount(np.arange(z.size) % m, weights=z, minlength=m) / np.bincount(
            np.arange(z.size) % m, minlength=m
        )
        out += weight * np.array([np.roll(folded, -p) @ template for p in range(m)])
    return out / np.sqrt(m)


def _repetition(descriptors: npt.NDArray[np.float64]) -> dict[int, float]:
    """How much more alike beats a whole number of m-beat bars apart are than beats at other lags.

    `descriptors` is (n_beats, d), the rhythm of each beat (`_descriptors`). Grooves, riffs and drum
    patterns repeat every bar, so the lags 3, 6, 9, 12 stand out in 3/4 and 4, 8, 12 in 4/4.
    """
    norm = np.linalg.norm(descriptors, axis=1, keepdims=True)
    unit = np.divide(descriptors, norm, out=np.zeros_like(descriptors), where=norm > 0)
    n = unit.shape[0]
    sim = {}
    for lag in range(1, 13):
        if n - lag < 8:
            break
        both = (norm[:-lag, 0] > 0) & (norm[lag:, 0] > 0)
        if both.sum() < 4:
            break
        sim[lag] = float(((unit[:-lag] * unit[lag:]).sum(axis=1))[both].mean())
    if len(sim) < 12:
        return {}
    base = float(np.mean([sim[lag] for lag in range(2, 13)]))
    return {m: float(np.mean([sim[lag] for lag in range(m, 13, m)])) - base for m in (2, 3, 4)}


def _phrase_starts(onsets: npt.NDArray[np.float64], n_beats: int) -> npt.NDArray[np.int64]:
    """Beats with an onset on them after a beat in which no note or drum hit starts (a rest, or every
    part holding: a phrase's end)."""
    on = _near_beats(onsets, np.ones(onsets.size), n_beats) > 0
    bucket = np.floor(onsets + ONSET_RADIUS).astype(np.int64)
    busy = np.zeros(n_beats, dtype=bool)
    busy[bucket[(bucket >= 0) & (bucket < n_beats)]] = True
    return np.flatnonzero(on[1:] & ~busy[:-1]) + 1


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


def _descriptors(
    notes: _Notes, drum_pitch: npt.NDArray[np.int64], drum_pos: npt.NDArray[np.float64], n_beats: int
) -> npt.NDArray[np.float64]:
    """(n_beats, 20) the rhythm of each beat, for `_repetition`: onsets of the pitched notes, the bass,
    kicks, snares and other drums on each quarter of the beat, each block scaled to unit length.

    Rhythm only: the pitches change with the chords, which in most songs change every bar, so they
    would make a bar unlike the next.
    """
    groups = [
        notes.start,
        notes.start[notes.bass],
        drum_pos[np.isin(drum_pitch, list(KICKS))],
        drum_pos[np.isin(drum_pitch, list(SNARES))],
        drum_pos[~np.isin(drum_pitch, list(KICKS | SNARES))],
    ]
    blocks = []
    for pos in groups:
        block = np.zeros((n_beats, 4))
        slot = np.rint(pos * 4).astype(np.int64)
        inside = (slot >= 0) & (slot < 4 * n_beats)
        np.add.at(block, (slot[inside] // 4, slot[inside] % 4), 1.0)
        norm = np.linalg.norm(block, axis=1, keepdims=True)
        blocks.append(np.divide(block, norm, out=np.zeros_like(block), where=norm > 0))
    return np.hstack(blocks)


def _metre(
    fits: dict[int, npt.NDArray[np.float64]],
    phase_features: list[tuple[float, npt.NDArray[np.float64]]],
    repetition: dict[int, float],
    ternary: bool,
    first_onset: int,
    options: AnalysisOptions,
    start_beat: int = -1,
    *,
    phrase_starts: npt.NDArray[np.int64],
) -> tuple[TimeSignature, int]:
    """The time signature and the beat index of the first bar line (< beats per bar).

    A bar length scores its best phase's template fit plus how much the music repeats at that period;
    4/4 is the default that 3/4 and 2/4 must beat by a margin (a 4/4 with an even harmonic rhythm fits
    the two-beat template nearly as well). The bar lines go where the chosen bar's template fits
    `phase_features` best (the accents with the bar phase's harmonic weight, `AnalysisOptions`), the
    phases putting a bar line on `start_beat` (the first onset's beat, -1 when it is off the beat) or
    on the beat after it gaining `options.pickup_bonus`, and those putting one on a later phrase's
    first beat (`phrase_starts`, `_phrase_starts`) or the beat after it `options.phrase_bonus`.
    """
    if 4 not in fits:
        return TimeSignature(4, 4), max(first_onset, 0) % 4
    if max(float(f.max()) for f in fits.values()) < 0.15:  # no accent pattern: 4/4 from the first note
        return TimeSignature(4, 4), max(first_onset, 0) % 4
    score = {m: float(f.max()) + options.repetition_weight * repetition.get(m, 0.0) for m, f in fits.items()}
    duple_margin = options.compound_margin if ternary else options.duple_margin
    if score[3] > score[4] + options.triple_margin and score[3] > score[2]:
        m = 3
    elif score[2] > score[4] + duple_margin:
        m = 2
    else:
        m = 4
    phase_fit = _fit(phase_features, m)
    if start_beat >= 0:
        phase_fit[[start_beat % m, (start_beat + 1) % m]] += options.pickup_bonus
    for t in phrase_starts[phrase_starts > start_beat]:
        phase_fit[[t % m, (t + 1) % m]] += options.phrase_bonus
    phase = int(np.argmax(phase_fit))
    if m == 2:
        return (TimeSignature(6, 8) if ternary else TimeSignature(2, 4)), phase
    return TimeSignature(m, 4), phase


# ------------------------------------------------------------------------------------------------ key


def _key_scores(histogram: npt.NDArray[np.float64], profile: str, method: str) -> npt.NDArray[np.float64]:
    """(24,) how well the histogram fits the profile on each tonic: 12 major, then 12 minor.

    "correlation" is Krumhansl and Schmuckler's Pearson correlation; "likelihood" is Temperley's
    probabilistic reading, the mean log probability of the sounding pitch classes under the key's
    profile taken as a distribution, which punishes tones outside the scale much harder.
    """
    major, minor = (np.asarray(p, dtype=np.float64) for p in PROFILES[profile])
    out = np.zeros(24)
    h = histogram - histogram.mean()
    share = histogram / histogram.sum()
    for mode, prof in enumerate((major, minor)):
        dist = np.maximum(prof / prof.sum(), 0.005)
        for tonic in range(12):
            if method == "likelihood":
                out[mode * 12 + tonic] = float(share @ np.log(np.roll(dist, tonic)))
                continue
            p = np.roll(prof, tonic) - prof.mean()
            denom = float(np.linalg.norm(h) * np.linalg.norm(p))
            out[mode * 12 + tonic] = float(h @ p) / denom if denom > 0 else 0.0
    return out


@dataclass(frozen=True, slots=True)
class _Harmony:
    """What the chords and the bass say about each of the 24 keys (12 major, then 12 minor), each (24,)
    and each a share in [0, 1]: time on the tonic triad, cadences into it, the bass on its tonic at bar
    lines, and whether the first and last chords are the tonic."""

    tonic_time: npt.NDArray[np.float64]
    cadences: npt.NDArray[np.float64]
    bass_tonic: npt.NDArray[np.float64]
    edges: npt.NDArray[np.float64]


def _family(quality: int) -> int:
    """0 for a major-family chord (maj, 7, maj7), 1 for a minor-family one (min, min7), -1 otherwise."""
    name = QUALITIES[quality].name if quality >= 0 else ""
    return 0 if name in ("maj", "7", "maj7") else (1 if name in ("min", "min7") else -1)


def _harmony(
    segments: list[_Segment], bass: npt.NDArray[np.float64], downbeat: npt.NDArray[np.bool_]
) -> _Harmony:
    """The chord and bass evidence for each key (see `_Harmony`); `bass` is (n_beats, 12), `downbeat`
    (n_beats,) marks the bar lines."""
    tonic_time, cadences, edges = np.zeros(24), np.zeros(24), np.zeros(24)
    chords = [seg for seg in segments if seg.quality >= 0 and _family(seg.quality) >= 0]
    for seg in chords:
        tonic_time[seg.root + 12 * _family(seg.quality)] += seg.last - seg.first
    if tonic_time.sum() > 0:
        tonic_time /= tonic_time.sum()
    # An authentic cadence: a major or dominant-seventh chord whose root falls a fifth to the tonic
    # triad (in minor also the natural minor's v, at half weight).
    changes = 0
    for prev, nxt in zip(chords, chords[1:], strict=False):
        if (prev.root, prev.quality) == (nxt.root, nxt.quality):
            continue
        changes += 1
        if (prev.root - nxt.root) % 12 != 7:
            continue
        mode, prev_mode = _family(nxt.quality), _family(prev.quality)
        if prev_mode == 0:
            cadences[nxt.root + 12 * mode] += 1.0
        elif mode == 1:
            cadences[nxt.root + 12] += 0.5
    if changes:
        cadences /= changes
    if chords:
        for seg in (chords[0], chords[-1]):
            edges[seg.root + 12 * _family(seg.quality)] += 0.5
    on_bar = bass[downbeat].sum(axis=0)
    bass_share = on_bar / on_bar.sum() if on_bar.sum() > 0 else np.zeros(12)
    return _Harmony(tonic_time, cadences, np.concatenate([bass_share, bass_share]), edges)


def _key(
    notes: _Notes, accent: npt.NDArray[np.float64], harmony: _Harmony, options: AnalysisOptions
) -> Key | None:
    """The key: a profile's fit to the pitch classes, weighted by duration, metrical accent and bass, plus
    the harmony's evidence for each tonic (which separates keys a fifth apart, whose scales share six of
    their seven notes), less a penalty for keys whose tonic chord hardly sounds. `accent` is (n,) each
    note's metrical weight (`_metrical_weights`)."""
    if notes.pitch.size == 0:
        return None
    weight = (
        np.minimum(notes.end - notes.start, 4.0) * accent * np.where(notes.bass, options.key_bass_weight, 1.0)
    )
    histogram = np.bincount(notes.pitch % 12, weights=weight, minlength=12).astype(np.float64)
    if histogram.sum() <= 0:
        return None
    scores = _key_scores(histogram, options.profile, options.key_method)
    scores = scores + (
        options.chord_key_weight * harmony.tonic_time
        + options.cadence_weight * harmony.cadences
        + options.bass_key_weight * harmony.bass_tonic
        + options.edge_weight * harmony.edges
    )
    if harmony.tonic_time.sum() > 0:
        scores = scores - options.absent_tonic_penalty * (harmony.tonic_time < options.absent_tonic_share)
    best = int(np.argmax(scores))
    return Key(best % 12, "major" if best < 12 else "minor")


def _metrical_weights(
    start: npt.NDArray[np.float64], signature: TimeSignature, first_downbeat: int, strength: float
) -> npt.NDArray[np.float64]:
    """(n,) a weight per note from where it starts in the bar: the metre template's accent for notes on a
    beat, 0.2 off the beat, blended with 1 (`strength` 0: every note counts the same)."""
    per_bar = signature.beats_per_bar
    template = np.asarray(METRE_TEMPLATES.get(per_bar, METRE_TEMPLATES[4]))
    nearest = np.rint(start)
    on_beat = np.abs(start - nearest) < ONSET_RADIUS
    position = ((nearest.astype(np.int64) - first_downbeat) % per_bar) % template.size
    accent = np.where(on_beat, template[position], 0.2)
    return (1.0 - strength) + strength * accent


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
    on_beat = onsets.size > 0 and abs(float(onsets.min()) - first_onset) < ONSET_RADIUS
    features = _accents(
        notes,
        drum_pitch,
        drum_pos,
        chroma,
        n_beats,
        span=options.harmony_span,
        harmony_weight=options.harmony_weight,
    )
    fits = {m: _fit(features, m) for m in (2, 3, 4) if n_beats >= 6 and n_beats >= 2 * m}
    repetition = _repetition(_descriptors(notes, drum_pitch, drum_pos, n_beats))
    phase_features = _accents(
        notes,
        drum_pitch,
        drum_pos,
        chroma,
        n_beats,
        span=options.phase_harmony_span,
        harmony_weight=options.phase_harmony_weight,
    )
    signature, first_downbeat = _metre(
        fits,
        phase_features,
        repetition,
        _ternary(notes, drum_pos),
        first_onset,
        options,
        start_beat=first_onset if on_beat else -1,
        phrase_starts=_phrase_starts(onsets, n_beats),
    )

    per_bar = signature.beats_per_bar
    phase = (np.arange(n_beats) - first_downbeat) % per_bar
    strength = np.where(phase == 0, 0, np.where((per_bar == 4) & (phase == 2), 1, 2)).astype(np.int64)
    segments = _segments(chroma, bass, strength, options)
    downbeat = phase == 0
    accent = _metrical_weights(notes.start, signature, first_downbeat, options.metrical_weight)
    key = _key(notes, accent, _harmony(segments, bass, downbeat), options)

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
