"""The transcription result: notes per instrument, with tempo and beats, and its JSON form."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stemscribe.stems import Family


@dataclass(frozen=True, slots=True)
class NoteEvent:
    """One note: MIDI pitch, start and end in seconds, velocity in 0..1.

    `bend` holds optional pitch-bend samples as (time in seconds, semitones) pairs.
    """

    pitch: int
    start: float
    end: float
    velocity: float
    bend: tuple[tuple[float, float], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "pitch": int(self.pitch),
            "start": round(float(self.start), 6),
            "end": round(float(self.end), 6),
            "velocity": round(float(self.velocity), 6),
        }
        if self.bend:
            d["pitch_bend"] = [[round(t, 6), round(s, 4)] for t, s in self.bend]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NoteEvent:
        bend = tuple((float(t), float(s)) for t, s in d.get("pitch_bend", ()))
        return cls(int(d["pitch"]), float(d["start"]), float(d["end"]), float(d["velocity"]), bend)


@dataclass(slots=True)
class Instrument:
    """One output track: a General MIDI instrument and its notes, sorted by start time."""

    name: str
    program: int
    is_drum: bool
    family: Family
    notes: list[NoteEvent] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "program": int(self.program),
            "is_drum": bool(self.is_drum),
            "family": self.family.value,
            "notes": [n.to_dict() for n in self.notes],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Instrument:
        is_drum = bool(d.get("is_drum", False))
        family = Family(d["family"]) if "family" in d else (Family.DRUMS if is_drum else Family.PIANO)
        return cls(
            name=str(d["name"]),
            program=int(d.get("program", 0)),
            is_drum=is_drum,
            family=family,
            notes=[NoteEvent.from_dict(n) for n in d.get("notes", ())],
        )


@dataclass(slots=True)
class Result:
    """Everything a transcription produced.

    `beats` are beat times in seconds (the tempo grid); `tempo` is the median tempo in BPM;
    `separator` names the separation backend that ran (or "none").
    """

    instruments: list[Instrument]
    duration: float
    stem: str
    tempo: float = 120.0
    beats: list[float] = field(default_factory=list)
    separator: str = "none"
    source: str | None = None

    @property
    def note_count(self) -> int:
        return sum(len(i.notes) for i in self.instruments)

    def to_dict(self) -> dict[str, Any]:
        """The seeds' shape (`{"instruments": [...]}`), plus stemscribe's own fields beside it."""
        return {
            "instruments": [i.to_dict() for i in self.instruments],
            "duration": round(self.duration, 6),
            "stem": self.stem,
            "tempo": round(self.tempo, 3),
            "beats": [round(b, 6) for b in self.beats],
            "separator": self.separator,
        }

    def to_json(self, *, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Result:
        return cls(
            instruments=[Instrument.from_dict(i) for i in d.get("instruments", ())],
            duration=float(d.get("duration", 0.0)),
            stem=str(d.get("stem", "auto")),
            tempo=float(d.get("tempo", 120.0)),
            beats=[float(b) for b in d.get("beats", ())],
            separator=str(d.get("separator", "none")),
        )

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json(indent=1), encoding="utf-8")
        return path

    def write_midi(self, path: str | Path, *, quantize: bool = False) -> Path:
        """Write a Standard MIDI File: one track per instrument, the tempo map, drums on channel 10."""
        from stemscribe.midi import write_midi

        return write_midi(self, path, quantize=quantize)

    def to_midi_bytes(self, *, quantize: bool = False) -> bytes:
        from stemscribe.midi import midi_bytes

        return midi_bytes(self, quantize=quantize)
