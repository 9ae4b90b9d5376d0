"""MusicXML of a Result through music21: one part per instrument, notes on the beat grid, bars, key, chords.

Notes are placed through the .mid's tempo map (`BeatMap`), so a beat of the score is a beat of the grid,
then quantised per beat to sixteenths, or to eighth-note triplets where that beat's onsets sit on
thirds (compound metres: sixteenths of the dotted quarter). Each staff is written as one voice: the
timeline is cut at every onset, end and bar line, and notes that sound across a cut are tied, so
overlapping notes become chords with ties and every note of the Result is one notehead (plus tied
continuations). The score is at concert pitch: guitars get the treble clef with an 8 below, bass
instruments the bass clef with an 8 below (both sound an octave under the staff), pianos spanning both
registers a grand staff split at middle C, other parts the treble or bass clef by their median pitch.
Drums go on a percussion staff, General MIDI keys on the usual drum-set lines and noteheads.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from stemscribe.score.analysis import QUALITY_BY_NAME, Key, ScoreAnalysis, _spell, analyze
from stemscribe.score.errors import missing
from stemscribe.score.grid import BeatMap
from stemscribe.stems import Family

if TYPE_CHECKING:
    from music21 import stream

    from stemscribe.result import Instrument, Result

log = logging.getLogger(__name__)

# Part order top to bottom; chord symbols go above the first pitched part.
FAMILY_ORDER = (
    Family.VOCALS, Family.WINDS, Family.BRASS, Family.SYNTH, Family.GUITAR, Family.KEYS, Family.PIANO,
    Family.STRINGS, Family.BASS, Family.DRUMS,
)  # fmt: skip
GRAND_STAFF_SPLIT = 60  # middle C: lower notes go to the piano's bass staff

# General MIDI drum key -> (display step and octave, music21 notehead) on a five-line percussion staff.
DRUM_DISPLAY: dict[int, tuple[str, str]] = {
    35: ("E4", "normal"), 36: ("F4", "normal"), 37: ("C5", "x"), 38: ("C5", "normal"), 39: ("B4", "x"),
    40: ("C5", "normal"), 41: ("G4", "normal"), 42: ("G5", "x"), 43: ("A4", "normal"), 44: ("D4", "x"),
    45: ("B4", "normal"), 46: ("G5", "circle-x"), 47: ("D5", "normal"), 48: ("E5", "normal"),
    49: ("A5", "x"), 50: ("F5", "normal"), 51: ("F5", "x"), 52: ("B5", "x"), 53: ("F5", "diamond"),
    55: ("B5", "x"), 57: ("A5", "x"), 59: ("F5", "x"),
}  # fmt: skip
DRUM_OTHER = ("E5", "triangle")  # auxiliary percussion: tambourine, cowbell, shakers, congas...


@dataclass(frozen=True, slots=True)
class _PartHead:
    """What a part's header needs from its instrument."""

    name: str
    program: int
    is_drum: bool


@dataclass(frozen=True, slots=True)
class _Staff:
    """One staff's notes as (pitch, start, end) in score beats, and how it is drawn."""

    notes: list[tuple[int, Fraction, Fraction]]
    clef: str  # treble, treble8vb, bass, bass8vb, percussion
    drum: bool


def _music21() -> Any:
    try:
        import music21
    except ImportError:
        raise missing("music21", "MusicXML") from None
    return music21


# ------------------------------------------------------------------------------------------- quantising


END_TOLERANCE = 0.15  # beats: a note's end this close to an eighth is written on it
CHORD_ONSET = 0.06  # beats: notes starting this close together are one chord ...
CHORD_END = 0.2  # ... and those of its notes ending this close together end together


def _chord_ends(starts: npt.NDArray[np.float64], ends: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """`ends` with the notes of a chord that are let go nearly together ending at the last of them, so
    a struck chord is written as one chord rather than notes tied on at sixteenths."""
    out = ends.copy()
    order = np.argsort(starts, kind="stable")
    breaks = np.flatnonzero(np.diff(starts[order]) > CHORD_ONSET) + 1
    for group in np.split(order, breaks):
        if group.size < 2:
            continue
        by_end = group[np.argsort(ends[group], kind="stable")]
        cuts = np.flatnonzero(np.diff(ends[by_end]) > CHORD_END) + 1
        for cluster in np.split(by_end, cuts):
            out[cluster] = ends[cluster].max()
    return out


def quantize(
    starts: Sequence[float], ends: Sequence[float], *, compound: bool
) -> list[tuple[Fraction, Fraction]]:
    """Snap (start, end) pairs in beats to the grid: per beat sixteenths, or triplet eighths where that
    beat's onsets fit thirds at least twice as well (compound metres: sixths of the beat throughout).

    Only onsets choose the grid: where a note is let go matters less to the ear and lands anywhere
    (a staccato eighth released at a third of the beat is no triplet), and in the sixteenths' beats an
    end within `END_TOLERANCE` of an eighth is written there. Every note keeps at least one grid step.
    """
    s = np.asarray(starts, dtype=np.float64)
    e = _chord_ends(s, np.asarray(ends, dtype=np.float64))
    events = np.concatenate([s, e])
    beat = np.floor(events + 1e-6).astype(np.int64)
    frac = events - beat
    triplet_beats: set[int] = set()
    if not compound and s.size:
        onset_beat, onset_frac = beat[: s.size], frac[: s.size]
        err4 = np.abs(onset_frac * 4 - np.rint(onset_frac * 4)) / 4
        err3 = np.abs(onset_frac * 3 - np.rint(onset_frac * 3)) / 3
        for b in np.unique(onset_beat).tolist():
            here = onset_beat == b
            if err4[here].max() > 0.06 and err3[here].sum() < 0.5 * err4[here].sum():
                triplet_beats.add(int(b))

    def steps(b: int) -> int:
        return 6 if compound else (3 if b in triplet_beats else 4)

    n = s.size
    snapped = []
    for i, (b, f) in enumerate(zip(beat.tolist(), frac.tolist(), strict=True)):
        g = steps(b)
        if i >= n and g == 4 and abs(f * 2 - round(f * 2)) / 2 <= END_TOLERANCE:
            g = 2  # an end near an eighth goes there: a staccato eighth, not a sixteenth and a rest
        snapped.append(Fraction(b) + Fraction(round(f * g), g))
    onsets = sorted(set(snapped[:n]))
    out = []
    for i in range(n):
        start, end = snapped[i], snapped[n + i]
        if end <= start:
            end = start + Fraction(1, steps(math.floor(start)))
        # A note released shortly before the next onset (or beat) is written up to it: no 16th rests.
        j = bisect.bisect_right(onsets, start)
        target = onsets[j] if j < len(onsets) else Fraction(math.ceil(end))
        if end < target and target - end <= max(Fraction(1, 4), (end - start) / 4):
            end = target
        out.append((start, end))
    return out


def _split_points(notes: Sequence[tuple[int, Fraction, Fraction]], compound: bool) -> set[Fraction]:
    """Beat boundaries around every note edge that is off the sixteenth grid (so triplets stay inside a
    beat)."""
    points: set[Fraction] = set()
    if compound:
        return points
    for _, s, e in notes:
        for x in (s, e):
            if (x * 4).denominator != 1:
                b = Fraction(math.floor(x))
                points.update((b, b + 1))
    return points


def _without_overlaps(notes: list[tuple[int, Fraction, Fraction]]) -> list[tuple[int, Fraction, Fraction]]:
    """Notes of one pitch never overlap on a staff: an earlier one ends where the next begins; a second
    note with the same pitch and start is dropped (logged)."""
    out: list[tuple[int, Fraction, Fraction]] = []
    last: dict[int, int] = {}
    dropped = 0
    for pitch, s, e in sorted(notes, key=lambda n: (n[1], n[0], n[2])):
        j = last.get(pitch)
        if j is not None and out[j][2] > s:
            if out[j][1] == s:
                dropped += 1
                continue
            out[j] = (pitch, out[j][1], s)
        last[pitch] = len(out)
        out.append((pitch, s, e))
    if dropped:
        log.debug("dropped %d notes doubling another of the same pitch and onset on their staff", dropped)
    return out


# ------------------------------------------------------------------------------------------- staffs


def _staffs(inst: Instrument, beat_map: BeatMap, shift: int, compound: bool) -> list[_Staff]:
    if not inst.notes:
        return [_Staff([], "percussion" if inst.is_drum else "treble", inst.is_drum)]
    starts = beat_map.to_beats([n.start for n in inst.notes]) + shift
    if inst.is_drum:
        # A hit lasts until the next hit of the kit, to the end of its beat at most: the beat it is
        # written in, which for a hit played a little early (within a sixteenth's half) is the next one.
        onsets = np.unique(starts)
        nxt = np.searchsorted(onsets, starts, side="right")
        following = np.where(nxt < onsets.size, onsets[np.minimum(nxt, onsets.size - 1)], starts + 1.0)
        ends = np.minimum(following, np.floor(starts + 0.125) + 1.0)
    else:
        ends = beat_map.to_beats([n.end for n in inst.notes]) + shift
    spans = quantize(starts.tolist(), ends.tolist(), compound=compound)
    notes = _without_overlaps([(n.pitch, s, e) for n, (s, e) in zip(inst.notes, spans, strict=True)])
    if inst.is_drum:
        return [_Staff(notes, "percussion", True)]
    pitches = np.array([n[0] for n in notes])
    median = float(np.median(pitches))
    if inst.family is Family.BASS:
        return [_Staff(notes, "bass8vb", False)]
    if inst.family is Family.GUITAR:
        return [_Staff(notes, "treble8vb", False)]
    if inst.family in (Family.PIANO, Family.KEYS):
        low = float(np.mean(pitches < GRAND_STAFF_SPLIT))
        if 0.1 <= low <= 0.9:
            upper = [n for n in notes if n[0] >= GRAND_STAFF_SPLIT]
            lower = [n for n in notes if n[0] < GRAND_STAFF_SPLIT]
            return [_Staff(upper, "treble", False), _Staff(lower, "bass", False)]
    if inst.family is Family.VOCALS and 48 <= median < 57:
        return [_Staff(notes, "treble8vb", False)]
    return [_Staff(notes, "treble" if median >= 57 else "bass", False)]


def _clef(m21: Any, name: str) -> Any:
    return {
        "treble": m21.clef.TrebleClef,
        "treble8vb": m21.clef.Treble8vbClef,
        "bass": m21.clef.BassClef,
        "bass8vb": m21.clef.Bass8vbClef,
        "percussion": m21.clef.PercussionClef,
    }[name]()


def _events(
    staff: _Staff, bounds: list[Fraction]
) -> list[tuple[Fraction, Fraction, list[tuple[int, str | None]]]]:
    """(start, end, [(pitch, tie type)]) per interval between consecutive bounds; [] is a rest.

    Tie types are music21's: "start", "continue", "stop", or None for a note inside one interval. Drum
    hits only sound in their first interval.
    """
    notes = sorted(staff.notes, key=lambda n: (n[1], n[0]))
    out = []
    active: list[tuple[int, Fraction, Fraction]] = []
    i = 0
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        while i < len(notes) and notes[i][1] <= a:
            active.append(notes[i])
            i += 1
        active = [n for n in active if n[2] > a]
        heads: list[tuple[int, str | None]] = []
        for pitch, s, e in sorted(active):
            started, goes_on = s == a, e > b
            if staff.drum:
                if started:
                    heads.append((pitch, None))
                continue
            tie = ("start" if goes_on else None) if started else ("continue" if goes_on else "stop")
            heads.append((pitch, tie))
        out.append((a, b, heads))
    return out


def _pitch(m21: Any, midi: int, key: Key | None) -> Any:
    """A music21 Pitch spelled for the key, with no natural sign unless music21 decides one is needed."""
    name = _spell(midi % 12, key).replace("b", "-")
    return m21.pitch.Pitch(name, octave=midi // 12 - 1)


def _element(
    m21: Any, heads: list[tuple[int, str | None]], drum: bool, quarter_length: Fraction, key: Key | None
) -> Any:
    if not heads:
        return m21.note.Rest(quarterLength=quarter_length)
    if drum:
        hits = []
        for pitch, _ in heads:
            display, head = DRUM_DISPLAY.get(pitch, DRUM_OTHER)
            u = m21.note.Unpitched(displayName=display)
            u.notehead = head
            hits.append(u)
        unique = {h.displayName + h.notehead: h for h in hits}
        if len(unique) == 1:
            el = next(iter(unique.values()))
        else:
            el = m21.percussion.PercussionChord(list(unique.values()))
        el.quarterLength = quarter_length
        el.stemDirection = "up"
        return el
    if len(heads) == 1:
        pitch, tie = heads[0]
        el = m21.note.Note(_pitch(m21, pitch, key), quarterLength=quarter_length)
        if tie:
            el.tie = m21.tie.Tie(tie)
        return el
    el = m21.chord.Chord([_pitch(m21, p, key) for p, _ in heads], quarterLength=quarter_length)
    for n, (_, tie) in zip(el.notes, heads, strict=True):
        if tie:
            n.tie = m21.tie.Tie(tie)
    return el


# ------------------------------------------------------------------------------------------- score


def _m21_key(m21: Any, analysis: ScoreAnalysis) -> Any:
    if analysis.key is None:
        return None
    return m21.key.Key(analysis.key.tonic_name.replace("b", "-"), analysis.key.mode)


def _chord_symbol(m21: Any, root: str, kind: str, bass: str | None) -> Any:
    return m21.harmony.ChordSymbol(
        root=root.replace("b", "-"), kind=kind, bass=None if bass is None else bass.replace("b", "-")
    )


def build_score(
    result: Result, analysis: ScoreAnalysis | None = None, *, title: str | None = None
) -> stream.Score:
    """A music21 Score of the Result (see the module docstring); `analysis` defaults to analyze(result)."""
    m21 = _music21()
    analysis = analysis or analyze(result)
    signature = analysis.time_signature
    per_bar = signature.beats_per_bar
    compound = signature.compound
    quarters = Fraction(3, 2) if compound else Fraction(4, signature.denominator)
    shift = (per_bar - analysis.first_downbeat) % per_bar
    beat_map = BeatMap.of(result)

    order = {f: i for i, f in enumerate(FAMILY_ORDER)}
    instruments = sorted(
        result.instruments, key=lambda i: order.get(Family.DRUMS if i.is_drum else i.family, len(order))
    )
    staffs_of = [
        (_PartHead(inst.name, inst.program, inst.is_drum), _staffs(inst, beat_map, shift, compound))
        for inst in instruments
    ]
    end_beat = Fraction(float(beat_map.to_beats([result.duration])[0])).limit_denominator(48) + shift
    for _, staffs in staffs_of:
        for staff in staffs:
            if staff.notes:
                end_beat = max(end_beat, max(n[2] for n in staff.notes))
    n_bars = max(1, int(np.ceil(float(end_beat) / per_bar - 1e-9)))
    bar_lines = [Fraction(per_bar * k) for k in range(n_bars + 1)]
    first = Fraction(shift)

    score = m21.stream.Score()
    score.insert(0, m21.metadata.Metadata())
    score.metadata.title = title or (Path(result.source).stem if result.source else "stemscribe")
    score.metadata.composer = "transcribed by stemscribe"
    top_done = False
    if not staffs_of:
        staffs_of = [(_PartHead("Empty", 0, False), [_Staff([], "treble", False)])]
    for inst, staffs in staffs_of:
        parts = []
        for index, staff in enumerate(staffs):
            part = m21.stream.PartStaff() if len(staffs) > 1 else m21.stream.Part()
            if index == 0:
                part.partName = inst.name
                if inst.is_drum:
                    part.insert(0, m21.instrument.UnpitchedPercussion())
                else:
                    try:
                        gm = m21.instrument.instrumentFromMidiProgram(int(inst.program))
                    except m21.exceptions21.InstrumentException:
                        gm = m21.instrument.Instrument()
                    gm.partName = inst.name
                    part.insert(0, gm)
            bounds = sorted(
                {first, *bar_lines[1:], *(n[1] for n in staff.notes), *(n[2] for n in staff.notes)}
            )
            bounds = [x for x in bounds if first <= x <= bar_lines[-1]]
            extra = _split_points(staff.notes, compound)
            bounds = sorted(set(bounds) | {x for x in extra if first < x < bar_lines[-1]})
            events = _events(staff, bounds)
            measures = []
            j = 0
            for k in range(n_bars):
                lo, hi = bar_lines[k], bar_lines[k + 1]
                measure = m21.stream.Measure(number=k + (0 if shift else 1))
                if k == 0:
                    measure.append(_clef(m21, staff.clef))
                    key = _m21_key(m21, analysis)
                    if key is not None and not staff.drum:
                        measure.append(key)
                    measure.append(m21.meter.TimeSignature(str(signature)))
                    if shift:
                        measure.paddingLeft = float(shift * quarters)
                while j < len(events) and events[j][0] < hi:
                    a, b, heads = events[j]
                    if a >= lo:
                        measure.append(_element(m21, heads, staff.drum, (b - a) * quarters, analysis.key))
                    j += 1
                measures.append(measure)
            if not top_done and not staff.drum and index == 0:
                top_done = True
                _add_tempo(m21, measures[0], result.tempo, quarters)
                _add_chords(m21, measures, analysis, beat_map, shift, quarters, per_bar)
            for measure in measures:
                part.append(measure)
            parts.append(part)
        for part in parts:
            score.insert(0, part)
        if len(parts) > 1:
            score.insert(0, m21.layout.StaffGroup(parts, name=inst.name, symbol="brace", barTogether=True))
    if not top_done:  # drums only: the tempo goes on the first staff
        first_part = score.parts[0]
        _add_tempo(m21, first_part.getElementsByClass("Measure")[0], result.tempo, quarters)
    return score


def _add_tempo(m21: Any, measure: Any, bpm: float, quarters: Fraction) -> None:
    referent = m21.duration.Duration(float(quarters))
    mark = m21.tempo.MetronomeMark(number=int(round(bpm if bpm > 0 else 120.0)), referent=referent)
    measure.insert(0.0, mark)


def _add_chords(
    m21: Any,
    measures: list[Any],
    analysis: ScoreAnalysis,
    beat_map: BeatMap,
    shift: int,
    quarters: Fraction,
    per_bar: int,
) -> None:
    if not analysis.chords:
        return
    positions = np.rint(beat_map.to_beats([c.start for c in analysis.chords]) * 4) / 4 + shift
    for chord, u in zip(analysis.chords, positions.tolist(), strict=True):
        pos = Fraction(u).limit_denominator(4)
        bar = int(pos // per_bar)
        if pos < shift or bar >= len(measures):
            continue
        root = _spell(chord.root, analysis.key)
        bass = _spell(chord.bass, analysis.key) if chord.bass != chord.root else None
        quality = QUALITY_BY_NAME[chord.quality]
        symbol = _chord_symbol(m21, root, quality.music21_kind, bass)
        symbol.chordKindStr = quality.suffix
        offset = (pos - bar * per_bar) * quarters
        if bar == 0 and shift:
            offset = (pos - shift) * quarters
        measures[bar].insert(float(offset), symbol)


def musicxml_bytes(
    result: Result, analysis: ScoreAnalysis | None = None, *, title: str | None = None
) -> bytes:
    """The score as uncompressed MusicXML (UTF-8)."""
    m21 = _music21()
    score = build_score(result, analysis, title=title)
    exporter = m21.musicxml.m21ToXml.GeneralObjectExporter(score)
    return bytes(exporter.parse())


def write_musicxml(
    result: Result, path: str | Path, analysis: ScoreAnalysis | None = None, *, title: str | None = None
) -> Path:
    path = Path(path)
    path.write_bytes(musicxml_bytes(result, analysis, title=title))
    return path
