"""The MusicXML parses back with music21: parts, clefs, metre, key, chord symbols and every pitched note."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from stemscribe.result import Instrument, NoteEvent, Result
from stemscribe.score.analysis import ScoreAnalysis, analyze
from stemscribe.score.musicxml import _staffs, musicxml_bytes, quantize, write_musicxml
from stemscribe.stems import Family

music21 = pytest.importorskip("music21")


def parse(result: Result, analysis: ScoreAnalysis | None = None) -> Any:
    xml = musicxml_bytes(result, analysis).decode("utf-8")
    return music21.converter.parseData(xml, format="musicxml")


def noteheads(part: Any) -> int:
    """Notes that begin on this staff: tied continuations merged, chord symbols left out."""
    n = 0
    for el in part.flatten().notes:
        if isinstance(el, music21.harmony.Harmony):
            continue
        for x in el.notes if el.isChord else [el]:
            if x.tie is None or x.tie.type == "start":
                n += 1
    return n


def instruments_of(score: Any) -> list[list[Any]]:
    """Staffs grouped by instrument: a grand staff's two PartStaffs count as one part."""
    groups: dict[str, list[Any]] = {}
    for part in score.parts:
        groups.setdefault(str(part.id).split("-Staff")[0], []).append(part)
    return list(groups.values())


def pitched_count(result: Result) -> int:
    return sum(len(i.notes) for i in result.instruments if not i.is_drum)


@pytest.mark.parametrize("name", ["example_result", "waltz", "six_eight", "pop_in_a_minor", "c_major_scale"])
def test_round_trip(name: str, request: pytest.FixtureRequest) -> None:
    result: Result = request.getfixturevalue(name)
    a = analyze(result)
    score = parse(result)
    parts = instruments_of(score)
    assert len(parts) == len(result.instruments)
    sig = score.recurse().getElementsByClass("TimeSignature").first()
    assert sig.ratioString == str(a.time_signature)
    key = score.recurse().getElementsByClass("KeySignature").first()
    assert key.sharps == a.key.sharps
    pitched = [
        staff
        for group in parts
        for staff in group
        if not staff.recurse().getElementsByClass("PercussionClef")
    ]
    assert sum(noteheads(staff) for staff in pitched) == pitched_count(result)
    symbols = score.recurse().getElementsByClass("ChordSymbol")
    assert len(symbols) == len(a.chords)
    marks = score.recurse().getElementsByClass("MetronomeMark")
    assert marks and marks.first().number == round(result.tempo)


def test_clefs_and_drum_staff(example_result: Result) -> None:
    score = parse(example_result)
    clefs = {p.partName: p.recurse().getElementsByClass("Clef").first() for p in score.parts if p.partName}
    assert clefs["Flute"].sign == "G"
    assert clefs["Bass"].sign == "F" and clefs["Bass"].octaveChange == -1
    assert isinstance(clefs["Drums"], music21.clef.PercussionClef)
    drums = next(p for p in score.parts if p.partName == "Drums")
    assert drums.recurse().getElementsByClass("Unpitched") or drums.recurse().getElementsByClass(
        "PercussionChord"
    )
    piano = [
        p for p in score.parts if str(p.id).split("-Staff")[0] == str(score.parts[1].id).split("-Staff")[0]
    ]
    assert [p.recurse().getElementsByClass("Clef").first().sign for p in piano] == ["G", "F"]


def test_ties_across_bars_and_triplets() -> None:
    """A note over the bar line comes back as two tied notes; three notes in one beat as a triplet."""
    notes = [NoteEvent(72, 1.5, 2.5, 0.8)] + [
        NoteEvent(74 + i, 3.0 + i / 3 * 0.5, 3.0 + (i + 1) / 3 * 0.5, 0.8) for i in range(3)
    ]
    notes += [NoteEvent(60, t, t + 0.4, 0.8) for t in (0.0, 0.5, 1.0, 3.5)]
    lead = Instrument("Flute", 73, False, music21_family(), sorted(notes, key=lambda n: n.start))
    result = Result([lead], 4.0, "mix", 120.0, [i * 0.5 for i in range(8)])
    # Bar lines on beat 0 (the analysis, from so few notes, hears the long note as a downbeat).
    score = parse(result, replace(analyze(result), first_downbeat=0))
    flat = [n for n in score.parts[0].flatten().notes if not isinstance(n, music21.harmony.Harmony)]
    tied = [n for n in flat if n.isNote and n.pitch.midi == 72]
    assert [t.tie.type for t in tied] == ["start", "stop"]
    assert [t.measureNumber for t in tied] == [1, 2]
    triplet = [n for n in flat if n.isNote and n.pitch.midi in (74, 75, 76)]
    assert all(n.duration.tuplets and n.duration.tuplets[0].numberNotesActual == 3 for n in triplet)
    assert noteheads(score.parts[0]) == len(notes)


def music21_family() -> Any:
    from stemscribe.stems import Family

    return Family.WINDS


def test_quantize_snaps_and_keeps_a_step() -> None:
    got = quantize([0.02, 1.0, 2.34], [0.48, 1.0, 2.66], compound=False)
    assert got[0] == (0, pytest.approx(0.5)) and got[1][1] > got[1][0]
    assert float(got[2][0]) == pytest.approx(1 / 3 + 2)


def test_drum_hits_a_little_early_last_to_the_next_hit() -> None:
    from stemscribe.score.grid import BeatMap

    hits = [NoteEvent(36, t, t + 0.05, 0.8) for t in (0.49, 0.99, 1.48, 2.0)]  # a beat 0.5 s, early
    kit = Instrument("Drums", 0, True, Family.DRUMS, hits)
    result = Result([kit], 2.5, "mix", 120.0, [i * 0.5 for i in range(6)])
    (staff,) = _staffs(kit, BeatMap.of(result), 0, False)
    assert [(float(s), float(e)) for _, s, e in staff.notes] == [(1, 2), (2, 3), (3, 4), (4, 5)]


def test_releases_do_not_make_triplets() -> None:
    # Staccato notes on the beats and the half beats, let go a third of a beat later: no triplet.
    starts = [0.0, 1.0, 2.0, 3.5]
    got = quantize(starts, [s + 0.34 for s in starts], compound=False)
    assert all(float(a) * 4 == int(float(a) * 4) and float(b) * 4 == int(float(b) * 4) for a, b in got)
    assert [float(a) for a, _ in got] == starts
    # An end near an eighth is an eighth (not a sixteenth and a rest); a clear sixteenth stays one.
    got = quantize([0.0, 1.0], [0.37, 1.27], compound=False)
    assert [float(b - a) for a, b in got] == [0.5, 0.25]
    # A chord's notes let go nearly together end together; a held note of it keeps its own end.
    got = quantize([1.02, 1.0, 1.01, 1.0], [1.32, 1.37, 1.36, 2.0], compound=False)
    assert [float(b) for _, b in got] == [1.5, 1.5, 1.5, 2.0]


@pytest.mark.parametrize("name", ["drums_only", "empty_result"])
def test_bad_cases_give_a_valid_score(name: str, request: pytest.FixtureRequest, tmp_path: Any) -> None:
    result: Result = request.getfixturevalue(name)
    path = write_musicxml(result, tmp_path / "s.musicxml")
    score = music21.converter.parse(str(path))
    assert len(score.parts) == max(1, len(result.instruments))
    assert score.recurse().getElementsByClass("Measure")


@pytest.mark.slow
def test_ten_minute_score(waltz: Result) -> None:
    """Ten minutes of a three-part waltz (about 7000 notes) as MusicXML: about 16 s on one core."""
    insts = []
    for inst in waltz.instruments:
        notes = [
            NoteEvent(n.pitch, n.start + k * 9.6, n.end + k * 9.6, n.velocity)
            for k in range(62)
            for n in inst.notes
        ]
        insts.append(Instrument(inst.name, inst.program, inst.is_drum, inst.family, notes))
    song = Result(insts, 600.0, "mix", 150.0, [i * 0.4 for i in range(1500)])
    xml = musicxml_bytes(song)
    assert xml.count(b"<measure ") >= 3 * 496
