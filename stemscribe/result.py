"""The transcription result: notes per instrument, with tempo and beats, and its JSON form."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stemscribe.stems import Family

if TYPE_CHECKING:
    from stemscribe.score.analysis import ScoreAnalysis


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
    `separator` names the separation backend that ran (or "none"). The score analysis (metre,
    downbeats, key, chords) is computed from the notes and beats when first asked for, and kept until
    an instrument, its note count, first or last note, or the grid changes.
    """

    instruments: list[Instrument]
    duration: float
    stem: str
    tempo: float = 120.0
    beats: list[float] = field(default_factory=list)
    separator: str = "none"
    source: str | None = None
    _analysis: tuple[tuple[Any, ...], ScoreAnalysis] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def note_count(self) -> int:
        return sum(len(i.notes) for i in self.instruments)

    def _fingerprint(self) -> tuple[Any, ...]:
        """What the analysis depends on, cheaply: each instrument's kind, note count, first and last note,
        and the grid."""
        notes = tuple(
            (
                i.is_drum,
                i.family,
                len(i.notes),
                i.notes[0] if i.notes else None,
                i.notes[-1] if i.notes else None,
            )
            for i in self.instruments
        )
        beats = (len(self.beats), self.beats[0], self.beats[-1]) if self.beats else ()
        return notes, self.duration, self.tempo, beats

    def score_analysis(self) -> ScoreAnalysis:
        """Time signature, downbeats, key and chord symbols (`stemscribe.score.analysis.analyze`)."""
        from stemscribe.score.analysis import analyze

        key = self._fingerprint()
        if self._analysis is None or self._analysis[0] != key:
            self._analysis = (key, analyze(self))
        return self._analysis[1]

    def to_dict(self) -> dict[str, Any]:
        """The seeds' shape (`{"instruments": [...]}`), plus stemscribe's own fields beside it: the
        grid (`tempo`, `beats`) and the score analysis (`time_signature`, `downbeats`, `key`, `chords`)."""
        return {
            "instruments": [i.to_dict() for i in self.instruments],
            "duration": round(self.duration, 6),
            "stem": self.stem,
            "tempo": round(self.tempo, 3),
            "beats": [round(b, 6) for b in self.beats],
            **self.score_analysis().to_dict(),
            "separator": self.separator,
        }

    def to_json(self, *, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Result:
        """The Result of `to_dict`'s JSON; the analysis fields are recomputed from the notes when needed."""
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
        """Write a Standard MIDI File: one track per instrument, the tempo map, drums on channel 10, and
        the analysis's time signature, key signature and chord markers on the conductor track."""
        path = Path(path)
        path.write_bytes(self.to_midi_bytes(quantize=quantize))
        return path

    def to_midi_bytes(self, *, quantize: bool = False) -> bytes:
        from stemscribe.midi import midi_bytes
        from stemscribe.score.midi_meta import conductor_meta

        return midi_bytes(self, quantize=quantize, meta=conductor_meta(self.score_analysis()))

    def to_musicxml(self, *, title: str | None = None) -> bytes:
        """The score as MusicXML (UTF-8): one part per instrument, key, metre, chord symbols, tempo mark.

        Needs the `score` extra (music21); ScoreUnavailableError says so when it is missing.
        """
        from stemscribe.score.musicxml import musicxml_bytes

        return musicxml_bytes(self, self.score_analysis(), title=title)

    def write_musicxml(self, path: str | Path, *, title: str | None = None) -> Path:
        """Write `to_musicxml()` to `path` (`.musicxml`); the title defaults to the file's name."""
        path = Path(path)
        path.write_bytes(self.to_musicxml(title=title or path.stem))
        return path
