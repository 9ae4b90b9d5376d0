"""The systems the benchmark compares: stemscribe (one warm `Transcriber`) and basic-pitch's `predict()`."""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any, Protocol

from bench.score import ScoredNote

# basic-pitch's MIDI has no instruments (one Electric Piano track): the issue scores its notes as piano.
PEER_FAMILY = "piano"


class System(Protocol):
    """Something that transcribes one benchmark item's audio into notes."""

    name: str

    def transcribe(self, path: Path, stem: str) -> tuple[list[ScoredNote], Any]:
        """Notes of the audio at `path` (told its stem type), and the system's raw output for `--save`."""
        ...


def transcriber_options(*, drums: str = "auto", engine: str | None = None) -> dict[str, Any]:
    """Keyword arguments for `stemscribe.Transcriber`: `engine` only when one is named."""
    options: dict[str, Any] = {"drums": drums}
    if engine is not None:
        options["engine"] = engine
    return options


class Stemscribe:
    """stemscribe's pipeline, models loaded once and reused for every item.

    `engine`, when given, is passed on as `stemscribe.Transcriber(engine=...)`; a stemscribe without that
    option raises a TypeError that says so.
    """

    name = "stemscribe"
    writes_drums = True

    def __init__(self, *, drums: str = "auto", engine: str | None = None) -> None:
        from stemscribe import Transcriber

        self.drums = drums
        self.engine = engine
        options = transcriber_options(drums=drums, engine=engine)
        try:
            self._transcriber = Transcriber(**options)
        except TypeError as exc:
            if engine is None:
                raise
            raise TypeError(f"this stemscribe's Transcriber takes no engine option ({exc})") from exc

    def transcribe(self, path: Path, stem: str) -> tuple[list[ScoredNote], Any]:
        result = self._transcriber.transcribe(path, stem=stem)
        notes = [
            ScoredNote(n.pitch, n.start, n.end, inst.family.value, inst.is_drum)
            for inst in result.instruments
            for n in inst.notes
        ]
        return notes, result

    @staticmethod
    def save(raw: Any, stem_path: Path) -> None:
        raw.write_json(stem_path.with_suffix(".json"))
        raw.write_midi(stem_path.with_suffix(".mid"))


class BasicPitch:
    """basic-pitch 0.4's `predict()` with its default settings; the model (ONNX here) is loaded once.

    The stem type is ignored: basic-pitch has one way to transcribe. All its notes count as PEER_FAMILY.
    """

    name = "basic-pitch"
    writes_drums = False

    def __init__(self) -> None:
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # basic-pitch logs a warning per runtime it lacks, on import
        try:
            from basic_pitch import ICASSP_2022_MODEL_PATH
            from basic_pitch.inference import Model, predict
        finally:
            root.setLevel(level)
        self._predict = predict
        self._model = Model(ICASSP_2022_MODEL_PATH)
        self.model_path = str(ICASSP_2022_MODEL_PATH)

    def transcribe(self, path: Path, stem: str) -> tuple[list[ScoredNote], Any]:
        with contextlib.redirect_stdout(io.StringIO()):  # predict() prints "Predicting MIDI for ..."
            _, midi, _ = self._predict(str(path), self._model)
        notes = [
            ScoredNote(int(n.pitch), float(n.start), float(n.end), PEER_FAMILY, False)
            for inst in midi.instruments
            for n in inst.notes
        ]
        return notes, midi

    @staticmethod
    def save(raw: Any, stem_path: Path) -> None:
        raw.write(str(stem_path.with_suffix(".mid")))
