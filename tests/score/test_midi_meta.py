"""The analysis as MIDI meta events, on a PrettyMIDI and on build_midi's mido file."""

from __future__ import annotations

import io

import mido
import pretty_midi
import pytest

from stemscribe.midi import build_midi
from stemscribe.result import Result
from stemscribe.score.analysis import analyze
from stemscribe.score.midi_meta import add_meta_events, add_meta_messages


def test_pretty_midi_events(waltz: Result) -> None:
    a = analyze(waltz)
    pm = pretty_midi.PrettyMIDI(io.BytesIO(waltz.to_midi_bytes()))
    add_meta_events(pm, a)
    buf = io.BytesIO()
    pm.write(buf)
    back = pretty_midi.PrettyMIDI(io.BytesIO(buf.getvalue()))
    assert [(t.numerator, t.denominator) for t in back.time_signature_changes] == [(3, 4)]
    assert [k.key_number for k in back.key_signature_changes] == [0]
    texts = [e.text for e in back.text_events]
    assert texts[:4] == ["chord:C", "chord:F", "chord:G", "chord:C"]
    assert back.text_events[1].time == pytest.approx(1.2, abs=0.01)


def test_mido_conductor_track(pop_in_a_minor: Result) -> None:
    a = analyze(pop_in_a_minor)
    midi = build_midi(pop_in_a_minor)
    add_meta_messages(midi, a, pop_in_a_minor)
    buf = io.BytesIO()
    midi.save(file=buf)
    back = mido.MidiFile(file=io.BytesIO(buf.getvalue()))
    conductor = list(back.tracks[0])
    sigs = [m for m in conductor if m.type == "time_signature"]
    assert [(m.numerator, m.denominator) for m in sigs] == [(4, 4)]
    assert [m.key for m in conductor if m.type == "key_signature"] == ["Am"]
    markers = [m.text for m in conductor if m.type == "marker"]
    assert markers[:4] == ["Am", "Dm", "Em", "Am"]
    assert any(m.type == "set_tempo" for m in conductor)
    tick, ticks = 0, {}
    for m in conductor:
        tick += m.time
        if m.type == "marker":
            ticks.setdefault(m.text, tick)
    assert ticks["Dm"] == 4 * 480


def test_pickup_writes_a_partial_bar(waltz: Result) -> None:
    from dataclasses import replace

    a = replace(analyze(waltz), first_downbeat=1)
    pm = pretty_midi.PrettyMIDI()
    add_meta_events(pm, a)
    assert [(t.numerator, t.denominator, round(t.time, 3)) for t in pm.time_signature_changes] == [
        (1, 4, 0.0),
        (3, 4, 0.4),
    ]
