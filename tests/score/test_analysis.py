"""Metre, downbeats, key and chords on hand-made Results with a known answer."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from stemscribe.result import Instrument, NoteEvent, Result
from stemscribe.score.analysis import (
    AnalysisOptions,
    Key,
    TimeSignature,
    _phrase_starts,
    analyze,
    chord_symbol,
)
from stemscribe.stems import Family
from tests.score.conftest import AM, C, F, G, grid, instrument, progression_song


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


# Triads and dominant sevenths for the G-versus-D pieces, bass an octave or two below.
G_MAJ, D_MAJ, D7, C_MAJ, E_MIN = (67, 71, 74), (62, 66, 69), (62, 66, 69, 72), (60, 64, 67), (64, 67, 71)


def block_chords(
    bars: Sequence[Sequence[tuple[tuple[int, ...], int, float]]],
    *,
    period: float = 0.5,
    beats_per_bar: int = 4,
) -> Result:
    """Chords and a bass from bars of (chord pitches, bass pitch, length in beats), no drums."""
    upper, low = [], []
    t = 0.0
    for bar in bars:
        assert sum(length for _, _, length in bar) == beats_per_bar
        for chord, bass, length in bar:
            end = t + length * period * 0.95
            upper += [(p, t, end) for p in chord]
            low.append((bass, t, end))
            t += length * period
    n_beats = round(t / period)
    insts = [instrument("Strings", 48, upper), instrument("Bass", 32, low)]
    return Result(insts, t, "mix", 60.0 / period, grid(n_beats + 1, period))


def test_cadences_into_g_make_g_major_even_where_d_sounds_longest() -> None:
    """D and D7 fill most bars, but the sevenths' C natural and the cadences resolve to G: G major (a
    profile fit on the durations alone, or the time spent on each triad, names the dominant)."""
    bar_a = [(D_MAJ, 50, 2.0), (D7, 50, 2.0)]
    bar_b = [(G_MAJ, 43, 4.0)]
    bar_c = [(D_MAJ, 50, 2.0), (E_MIN, 40, 1.0), (D_MAJ, 50, 1.0)]
    result = block_chords([bar_a, bar_c, bar_a, bar_b] * 3)
    a = analyze(result)
    assert str(a.key) == "G major"


def test_the_g_chords_with_c_sharp_and_cadences_into_d_make_d_major() -> None:
    """Nearly as much G as D, but C sharp in the A7s and the A7-D cadences: D major, not G (whose IV-I
    the G-D steps would also be)."""
    a7 = (57, 61, 64, 67)
    bars = [
        [(D_MAJ, 50, 2.0), (G_MAJ, 43, 2.0)],
        [(E_MIN, 40, 2.0), (a7, 45, 2.0)],
        [(G_MAJ, 43, 2.0), (a7, 45, 2.0)],
        [(D_MAJ, 50, 4.0)],
    ]
    a = analyze(block_chords(bars * 3))
    assert str(a.key) == "D major"


def test_minor_loop_without_the_relative_major_tonic_is_minor() -> None:
    """C#m-B-A-B (i-VII-VI-VII) over a melody of chord tones: the notes are E major's, but the E chord
    never sounds, so the key is C# minor, not E major."""
    c_sharp_minor, b_major, a_major = (61, 64, 68), (59, 63, 66), (57, 61, 64)
    melody = [68, 66, 64, 66, 71, 66, 63, 66, 69, 68, 64, 61, 66, 63, 59, 63]
    song = progression_song(
        [c_sharp_minor, b_major, a_major, b_major], [49, 47, 45, 47], beats_per_bar=4, bars=8, melody=melody
    )
    assert str(analyze(song).key) == "C# minor"


# C, F, G, Am, Dm and Em in close position, each (chord pitches, bass pitch).
C_MAJOR_CHORDS = (
    ((60, 64, 67), 48),
    ((60, 65, 69), 41),
    ((59, 62, 67), 43),
    ((57, 60, 64), 45),
    ((57, 62, 65), 50),
    ((59, 64, 67), 52),
)


def chorale_phrase(
    chords: Sequence[tuple[tuple[int, ...], int]],
) -> list[list[tuple[tuple[int, ...], int, float]]]:
    """Two 4/4 bars of a chorale-like phrase: a chord on every beat, the last one a half note on beat 3."""
    first = [(c, b, 1.0) for c, b in chords[:4]]
    second = [(c, b, 1.0) for c, b in chords[4:6]] + [(chords[6][0], chords[6][1], 2.0)]
    return [first, second]


def test_chorale_like_texture_is_four_four() -> None:
    """Block chords on every beat, the harmony changing on almost every beat and each two-bar phrase
    ending on a half note on beat 3: 4/4, not 3/4, with the bar lines on even beats (whether the phrase's
    first beat or its long note is beat 1 the texture alone does not say)."""
    c, f, g, am, dm, em = C_MAJOR_CHORDS
    phrases = [
        chorale_phrase([c, f, g, c, am, dm, g]),
        chorale_phrase([c, em, am, f, dm, g, c]),
        chorale_phrase([am, dm, g, c, f, g, c]),
        chorale_phrase([c, g, am, em, f, dm, g]),
    ]
    result = block_chords([bar for phrase in phrases for bar in phrase] * 2)
    a = analyze(result)
    assert str(a.time_signature) == "4/4"
    assert a.first_downbeat % 2 == 0
    assert str(a.key) == "C major"


def chorale_texture_with_mixed_phrase_ends() -> Result:
    """Eight 4/4 bars of chorale-like phrases, block chords on every beat, alternately ending on a half
    note on beat 3 and holding a half note on beat 1 of their second bar; the accents alone put the bar
    line on beat 3, a little ahead of beat 1."""
    c, f, g, am, dm, em = C_MAJOR_CHORDS
    bars = []
    for k, chords in enumerate(
        [[c, f, g, c, am, dm, g], [c, em, am, f, dm, g, c], [am, dm, g, c, f, g, c], [c, g, am, em, f, dm, g]]
    ):
        if k % 2 == 0:
            bars += chorale_phrase(chords)
        else:
            bars.append([(ch, b, 1.0) for ch, b in chords[:4]])
            bars.append([(chords[4][0], chords[4][1], 2.0)] + [(ch, b, 1.0) for ch, b in chords[5:]])
    return block_chords(bars * 2)


def delayed(result: Result, beats: int, lead: Sequence[NoteEvent] = ()) -> Result:
    """`result` moved `beats` beats later on a grid as much longer, with `lead` notes before it."""
    period = result.beats[1] - result.beats[0]
    insts = [
        Instrument(i.name, i.program, i.is_drum, i.family, [shifted(n, beats * period) for n in i.notes])
        for i in result.instruments
    ]
    insts[0].notes[:0] = list(lead)
    n_beats = len(result.beats) + beats
    return Result(insts, result.duration + beats * period, "mix", result.tempo, grid(n_beats, period))


def test_a_piece_starts_on_a_bar_line_where_the_accents_nearly_tie() -> None:
    """A chorale-like piece whose accents favour beat 3 a little over its first chord: a piece starts on
    a bar line or one beat before it, so the first chord is beat 1."""
    result = chorale_texture_with_mixed_phrase_ends()
    a = analyze(result)
    assert str(a.time_signature) == "4/4"
    assert a.first_downbeat == 0
    assert analyze(result, AnalysisOptions(pickup_bonus=0.0)).first_downbeat == 2


def test_chorale_with_a_pickup_has_its_bar_line_after_the_pickup() -> None:
    """The same piece after a one-beat pickup chord: the bar line is the beat after the pickup."""
    pickup = [NoteEvent(p, 0.0, 0.45, 0.8) for p in (55, 59, 62)]
    a = analyze(delayed(chorale_texture_with_mixed_phrase_ends(), 1, pickup))
    assert a.first_downbeat == 1
    assert a.downbeats[:2] == pytest.approx([0.5, 2.5])


def test_an_excerpt_starting_off_the_beat_gets_no_start_bonus() -> None:
    """A window cut from a piece's middle, its first onset between two beats: the bar line is where the
    accents put it (the piece's beat 3), with or without the start's bonus."""
    result = delayed(chorale_texture_with_mixed_phrase_ends(), 1, [NoteEvent(67, 0.125, 0.45, 0.8)])
    assert analyze(result).first_downbeat == 3
    assert analyze(result, AnalysisOptions(pickup_bonus=0.0)).first_downbeat == 3


def test_phrases_after_rests_pull_the_bar_line_to_their_first_beat() -> None:
    """An excerpt starting off the beat (no start bonus) whose phrases each end on a half note on beat
    3, so nothing starts on beat 4 and every next phrase starts on beat 1: with the phrase bonus the
    bar lines go there instead of where the accents alone put them (beat 3)."""
    c, f, g, am, dm, _ = C_MAJOR_CHORDS
    bars = chorale_phrase([c, f, g, c, am, dm, g]) + chorale_phrase([am, dm, g, c, f, g, c])
    result = delayed(block_chords(bars * 2), 1, [NoteEvent(67, 0.125, 0.45, 0.8)])
    assert analyze(result, AnalysisOptions(phrase_bonus=0.0)).first_downbeat == 3
    assert analyze(result, AnalysisOptions(phrase_bonus=0.5)).first_downbeat == 1


def test_phrase_starts_are_on_beat_onsets_after_a_beat_where_nothing_starts() -> None:
    onsets = np.array([0.0, 1.0, 2.02, 4.0, 5.5, 7.0, 9.1, 10.4])
    assert _phrase_starts(onsets, 12).tolist() == [4, 7, 9]


def test_four_four_pickup_puts_the_bar_line_after_it() -> None:
    """A 4/4 song whose melody starts one beat early (an anacrusis): the first bar line is beat 1, where
    the bass, the kick and the first chord change are, not the first note."""
    melody = [72, 67, 64, 67, 69, 65, 69, 72, 71, 67, 62, 67, 72, 67, 64, 60]
    song = progression_song([C, F, G, C], [48, 53, 43, 48], beats_per_bar=4, bars=8, melody=melody)
    insts = [
        Instrument(i.name, i.program, i.is_drum, i.family, [shifted(n, 0.5) for n in i.notes])
        for i in song.instruments
    ]
    insts[0].notes.insert(0, NoteEvent(67, 0.0, 0.45, 0.8))
    result = Result(insts, song.duration + 0.5, "mix", 120.0, [i * 0.5 for i in range(len(song.beats) + 1)])
    a = analyze(result)
    assert str(a.time_signature) == "4/4"
    assert a.first_downbeat == 1
    assert a.downbeats[:3] == pytest.approx([0.5, 2.5, 4.5])
    assert a.bar_number(0.2) == 0 and a.bar_number(0.6) == 1


def test_bar_lines_follow_the_chord_changes_where_long_notes_start_on_beat_two() -> None:
    """C-Am-F-G, one chord a bar in short stabs on every beat, while the bass (after a short root on
    beat 1) and the melody hold long notes from beat 2: the bar lines are on the chord changes."""
    period = 0.5
    piano, bass, lead = [], [], []
    for b in range(8):
        chord, root = [C, AM, F, G][b % 4], [48, 45, 41, 43][b % 4]
        t0 = b * 4 * period
        piano += [(p, t0 + k * period, t0 + (k + 0.4) * period) for k in range(4) for p in chord]
        bass += [(root, t0, t0 + 0.3 * period), (root + 12, t0 + period, t0 + 3.9 * period)]
        lead.append((chord[2] + 12, t0 + period, t0 + 3.5 * period))
    insts = [instrument("Flute", 73, lead), instrument("Piano", 0, piano), instrument("Bass", 33, bass)]
    a = analyze(Result(insts, 32 * period, "mix", 120.0, grid(32, period)))
    assert str(a.time_signature) == "4/4"
    assert a.first_downbeat == 0
    assert [c.symbol for c in a.chords][:4] == ["C", "Am", "F", "G"]
