"""stemscribe: songs and stems to per-instrument MIDI, offline."""

from stemscribe.audio import Audio, load_audio
from stemscribe.errors import (
    AudioError,
    AudioTooLongError,
    CorruptAudioError,
    EmptyAudioError,
    EngravingError,
    InvalidOptionError,
    ModelError,
    NotAudioError,
    ScoreUnavailableError,
    SeparationUnavailableError,
    StemscribeError,
)
from stemscribe.result import Instrument, NoteEvent, Result
from stemscribe.score.analysis import ScoreAnalysis
from stemscribe.stems import Family, StemType
from stemscribe.transcription.pipeline import Transcriber, transcribe

__version__ = "0.1.0"

__all__ = [
    "Audio",
    "AudioError",
    "AudioTooLongError",
    "CorruptAudioError",
    "EmptyAudioError",
    "EngravingError",
    "Family",
    "Instrument",
    "InvalidOptionError",
    "ModelError",
    "NotAudioError",
    "NoteEvent",
    "Result",
    "ScoreAnalysis",
    "ScoreUnavailableError",
    "SeparationUnavailableError",
    "StemType",
    "StemscribeError",
    "Transcriber",
    "load_audio",
    "transcribe",
    "__version__",
]
