"""Metre, downbeats, key and chords on hand-made Results with a known answer."""

from __future__ import annotations

import pytest

from stemscribe.result import Instrument, NoteEvent, Result
from stemscribe.score.analysis import Key, TimeSignature, analyze, chord_symbol
from stemscribe.stems import Family


def shifted(n: NoteEvent, dt: float) -> NoteEvent:
    return NoteEvent(n.pitch, n.start + dt, n.end + dt, n.velocity)


def symbols(result: Result) -> list[str]:
    return [c.symbol for c in analyze(result).chords]


def test_scale_is_c_major_in_four(c_major_scale: Result) -> None:
    a = analyze(c_major_scale)
    assert str(a.key) == "C major"
    assert str(a.time_signature) == "4/4"
    assert a.downbeats[:4] == pytest.approx([0.0, 2.0, 4.0, 6.0])


def test_waltz_is_three_four_with_its_chords(waltz: Result) -> None:
    a = analyze(waltz)
    assert str(a.time_signature) == "3/4"
    assert str(a.key) == "C major"
    assert a.downbeats[:3] == pytest.approx([0.0, 1.2, 2.4])
    assert [c.symbol for c in a.chords] == ["C", "F", "G", "C", "F", "G", "C"]
    assert a.chords[1].start == pytest.approx(1.2) and a.chords[1].end == pytest.approx(2.4)
    assert a.bar_number(0.1) == 1 and a.bar_number(1.3) == 2


def test_minor_progression(pop_in_a_minor: Result) -> None:
    a = analyze(pop_in_a_minor)
    assert str(a.key) == "A minor"
    assert str(a.time_signature) == "4/4"
    assert symbols(pop_in_a_minor)[:4] == ["Am", "Dm", "Em", "Am"]


def test_six_eight_with_inversions(six_eight: Result) -> None:
    a = analyze(six_eight)
    assert str(a.time_signature) == "6/8"
    assert a.time_signature.beats_per_bar == 2 and a.time_signature.beat_quarters == 1.5
    assert [c.symbol for c in a.chords][:4] == ["C", "G/B", "Am", "F/C"]
    assert a.chords[1].mirex == "G:maj/3" and a.chords[3].mirex == "F:maj/5"


def test_pickup_bar_is_found(waltz: Result) -> None:
    """The waltz one beat later, after a one-note pickup: the first bar line is on beat 1."""
    insts = [
        Instrument(i.name, i.program, i.is_drum, i.family, [shifted(n, 0.4) for n in i.notes])
        for i in waltz.instruments
    ]
    insts[0].notes.insert(0, NoteEvent(67, 0.0, 0.35, 0.6))
    result = Result(insts, waltz.duration + 0.4, "mix", 150.0, [i * 0.4 for i in range(len(waltz.beats) + 1)])
    a = analyze(result)
    assert str(a.time_signature) == "3/4"
    assert a.first_downbeat == 1
    assert a.bar_number(0.0) == 0 and a.bar_number(0.45) == 1


def test_drums_only_has_a_metre_and_no_key(drums_only: Result) -> None:
    a = analyze(drums_only)
    assert a.key is None and a.chords == ()
    assert str(a.time_signature) == "4/4"
    assert a.downbeats[0] == pytest.approx(0.0)


def test_empty_and_tiny_results() -> None:
    empty = analyze(Result([], 0.0, "mix"))
    assert empty.key is None and empty.chords == () and str(empty.time_signature) == "4/4"
    one = Result([Instrument("Piano", 0, False, Family.PIANO, [NoteEvent(64, 0.1, 0.3, 0.5)])], 0.4, "mix")
    a = analyze(one)
    assert a.key is not None and len(a.chords) <= 1
    assert a.to_dict()["time_signature"] == "4/4"


def test_ten_minute_song_is_analysed_whole(waltz: Result) -> None:
    """A 10-minute song gets one metre, key and a downbeat per bar (its speed is bench.sheet's to report)."""
    period, bar = 0.4, 1.2
    n_bars = int(600 / bar)
    insts = []
    for inst in waltz.instruments:
        notes = [
            NoteEvent(n.pitch, n.start + k * 9.6, n.end + k * 9.6, n.velocity)
            for k in range(n_bars // 8)
            for n in inst.notes
        ]
        insts.append(Instrument(inst.name, inst.program, inst.is_drum, inst.family, notes))
    beats = [i * period for i in range(n_bars * 3)]
    song = Result(insts, 600.0, "mix", 150.0, beats)
    a = analyze(song)
    assert str(a.time_signature) == "3/4" and str(a.key) == "C major"
    assert len(a.downbeats) == pytest.approx(n_bars, abs=1)


def test_example_midi(example_result: Result) -> None:
    a = analyze(example_result)
    assert str(a.time_signature) == "4/4"
    assert str(a.key) in ("A minor", "C major")
    assert [c.symbol.split("maj7")[0] for c in a.chords][:4] == ["Am", "F", "C", "G"]


def test_names_and_json_fields() -> None:
    assert str(Key(6, "minor")) == "F# minor" and str(Key(10, "major")) == "Bb major"
    assert Key(10, "major").sharps == -2 and Key(4, "minor").sharps == 1
    assert chord_symbol(7, "maj", 11) == "G/B"
    assert chord_symbol(2, "sus4", 2) == "Dsus4"
    assert chord_symbol(10, "min7", 10, Key(3, "major")) == "Bbm7"
    assert chord_symbol(6, "maj", 6, Key(4, "major")) == "F#"
    assert str(TimeSignature(6, 8)) == "6/8"
