"""The analysis where the Result goes: its JSON, its .mid's conductor track, `to_musicxml()`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import mido
import pretty_midi
import pytest

from stemscribe.result import Result


def conductor(
    result: Result, *, quantize: bool = False
) -> tuple[mido.MidiFile, list[tuple[int, mido.Message]]]:
    midi = mido.MidiFile(file=io.BytesIO(result.to_midi_bytes(quantize=quantize)))
    out, tick = [], 0
    for msg in midi.tracks[0]:
        tick += msg.time
        out.append((tick, msg))
    return midi, out


def test_json_has_the_analysis_beside_tempo_and_beats(waltz: Result) -> None:
    d = waltz.to_dict()
    keys = list(d)
    assert keys.index("beats") + 1 == keys.index("time_signature")
    assert d["time_signature"] == "3/4" and d["key"] == "C major"
    assert [c["symbol"] for c in d["chords"][:4]] == ["C", "F", "G", "C"]
    assert d["downbeats"][:2] == [0.0, 1.2]
    assert all(set(c) == {"start", "end", "symbol"} for c in d["chords"])
    back = Result.from_dict(json.loads(json.dumps(d)))  # the extra fields are tolerated, and come back
    assert back.to_dict() == d


def test_analysis_is_computed_once_and_follows_changes(
    waltz: Result, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stemscribe.score.analysis as analysis

    calls = []
    real = analysis.analyze
    monkeypatch.setattr(analysis, "analyze", lambda r: calls.append(1) or real(r))
    waltz.to_dict()
    waltz.to_json()
    waltz.to_midi_bytes()
    assert len(calls) == 1
    waltz.instruments = waltz.instruments[1:]  # the piano goes: the analysis is made again
    waltz.to_dict()
    assert len(calls) == 2


def test_empty_result_json() -> None:
    d = Result([], 2.0, "mix", 120.0, [0.0, 0.5, 1.0, 1.5]).to_dict()
    assert d["key"] is None and d["chords"] == [] and d["time_signature"] == "4/4"
    assert Result.from_dict({"instruments": []}).to_dict()["key"] is None


def test_mid_carries_metre_key_and_chords(pop_in_a_minor: Result) -> None:
    _, events = conductor(pop_in_a_minor)
    sigs = [(m.numerator, m.denominator) for _, m in events if m.type == "time_signature"]
    assert sigs == [(4, 4)]
    assert [m.key for _, m in events if m.type == "key_signature"] == ["Am"]
    markers = [(t, m.text) for t, m in events if m.type == "marker"]
    assert [text for _, text in markers[:4]] == ["Am", "Dm", "Em", "Am"]
    assert markers[1][0] == 4 * 480
    pm = pretty_midi.PrettyMIDI(io.BytesIO(pop_in_a_minor.to_midi_bytes()))
    assert [k.key_number for k in pm.key_signature_changes] == [9 + 12]  # A minor


def test_six_eight_mid_has_dotted_quarter_beats(six_eight: Result) -> None:
    midi, events = conductor(six_eight)
    assert [(m.numerator, m.denominator) for _, m in events if m.type == "time_signature"] == [(6, 8)]
    tempo = next(m.tempo for _, m in events if m.type == "set_tempo")
    assert tempo == pytest.approx(1_000_000 / 1.5, rel=1e-3)  # a quarter is 2/3 of the 1 s beat
    pm = pretty_midi.PrettyMIDI(io.BytesIO(six_eight.to_midi_bytes()))
    bars = pm.get_downbeats()
    assert bars[:3] == pytest.approx([0.0, 2.0, 4.0], abs=1e-3)  # two 1 s beats a bar
    notes = [n for n in pm.instruments[0].notes]
    assert notes[1].start == pytest.approx(six_eight.instruments[0].notes[1].start, abs=2e-3)
    quantized = pretty_midi.PrettyMIDI(io.BytesIO(six_eight.to_midi_bytes(quantize=True)))
    assert quantized.instruments[0].notes[1].start == pytest.approx(1 / 3, abs=1e-3)  # the second eighth
    assert midi.ticks_per_beat == 480


def test_to_musicxml_and_write(waltz: Result, tmp_path: Path) -> None:
    music21 = pytest.importorskip("music21")
    score = music21.converter.parseData(waltz.to_musicxml(title="Waltz").decode(), format="musicxml")
    assert score.metadata.bestTitle == "Waltz"
    assert score.recurse().getElementsByClass("TimeSignature")[0].ratioString == "3/4"
    path = waltz.write_musicxml(tmp_path / "w.musicxml")
    parsed = music21.converter.parse(str(path))
    assert parsed.metadata.bestTitle == "w" and len(parsed.parts) == 3


def test_example_musicxml_matches_its_json(example_result: Result) -> None:
    music21 = pytest.importorskip("music21")
    d = example_result.to_dict()
    score = music21.converter.parseData(example_result.to_musicxml().decode(), format="musicxml")
    key = score.recurse().getElementsByClass("KeySignature")[0]
    assert d["key"] == "C major" and key.sharps == 0
    assert score.recurse().getElementsByClass("TimeSignature")[0].ratioString == d["time_signature"]
