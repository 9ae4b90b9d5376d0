"""The .mid round-trip: pretty_midi reads back what was written, with true times and the tempo map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pretty_midi

from stemscribe.result import Instrument, NoteEvent, Result
from stemscribe.stems import Family


def _result(beats: list[float]) -> Result:
    bass = Instrument(
        "Electric Bass (finger)",
        33,
        False,
        Family.BASS,
        [NoteEvent(40, 0.51, 0.98, 0.7), NoteEvent(43, 1.02, 1.4, 0.4, bend=((1.1, 0.5), (1.2, -0.25)))],
    )
    drums = Instrument(
        "Drums", 0, True, Family.DRUMS, [NoteEvent(36, 0.5, 0.6, 1.0), NoteEvent(38, 1.0, 1.1, 0.8)]
    )
    return Result([bass, drums], duration=2.0, stem="mix", tempo=100.0, beats=beats)


def test_round_trip_keeps_true_times(tmp_path: Path) -> None:
    beats = [0.3, 0.9, 1.5, 2.1]  # 100 BPM starting late: a lead-in tempo segment is needed
    path = _result(beats).write_midi(tmp_path / "a.mid")
    pm = pretty_midi.PrettyMIDI(str(path))
    assert [i.program for i in pm.instruments] == [33, 0]
    assert [i.is_drum for i in pm.instruments] == [False, True]
    assert [i.name for i in pm.instruments] == ["Electric Bass (finger)", "Drums"]
    starts = [round(n.start, 2) for n in pm.instruments[0].notes]
    assert starts == [0.51, 1.02]
    assert [n.velocity for n in pm.instruments[0].notes] == [89, 51]
    assert len(pm.instruments[0].pitch_bends) == 3
    # The tempo map puts every beat on a quarter note.
    beat_ticks = [pm.time_to_tick(b) for b in beats]
    assert np.allclose(np.diff(beat_ticks), pm.resolution, atol=1)
    _, tempi = pm.get_tempo_changes()
    assert np.isclose(tempi[-1], 100.0, atol=0.5)


def test_a_first_beat_just_after_zero_is_beat_one_not_a_spike_of_tempo(tmp_path: Path) -> None:
    # The tracker's first beat 20 ms in: the tempo map starts at that beat's tempo, with no 20 ms beat
    # (3,000 BPM) before it, and the next beats land on whole quarter notes from tick 0.
    beats = [0.02, 0.62, 1.22, 1.82]
    pm = pretty_midi.PrettyMIDI(str(_result(beats).write_midi(tmp_path / "s.mid")))
    _, tempi = pm.get_tempo_changes()
    assert tempi.max() < 110.0
    assert [pm.time_to_tick(b) for b in beats[1:]] == [pm.resolution, 2 * pm.resolution, 3 * pm.resolution]


def test_quantised_notes_sit_on_the_grid(tmp_path: Path) -> None:
    beats = [0.0, 0.6, 1.2, 1.8]
    path = _result(beats).write_midi(tmp_path / "q.mid", quantize=True)
    pm = pretty_midi.PrettyMIDI(str(path))
    for inst in pm.instruments:
        for n in inst.notes:
            assert pm.time_to_tick(n.start) % (pm.resolution // 4) == 0
            assert n.end > n.start


def test_without_beats_a_constant_tempo(tmp_path: Path) -> None:
    r = _result([])
    r.tempo = 90.0
    pm = pretty_midi.PrettyMIDI(str(r.write_midi(tmp_path / "c.mid")))
    _, tempi = pm.get_tempo_changes()
    assert np.allclose(tempi, 90.0, atol=0.1)
    assert round(pm.instruments[0].notes[0].start, 2) == 0.51


def test_json_shape_matches_the_seeds() -> None:
    d = _result([0.0, 0.5]).to_dict()
    inst = d["instruments"][0]
    assert set(inst) >= {"name", "program", "is_drum", "notes"}
    note = inst["notes"][0]
    assert set(note) >= {"pitch", "start", "end", "velocity"}
    assert isinstance(note["start"], float) and isinstance(note["pitch"], int)
    assert d["instruments"][1]["name"] == "Drums" and d["instruments"][1]["is_drum"] is True
    assert Result.from_dict(d).to_dict() == d
