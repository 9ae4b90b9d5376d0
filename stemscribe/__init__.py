"""stemscribe: songs and stems to per-instrument MIDI, offline."""

from stemscribe.audio import Audio, load_audio
from stemscribe.errors import (
    AudioError,
    AudioTooLongError,
    CorruptAudioError,
    EmptyAudioError,
    InvalidOptionError,
    ModelError,
    NotAudioError,
    SeparationUnavailableError,
    StemscribeError,
)
from stemscribe.result import Instrument, NoteEvent, Result
from stemscribe.stems import Family, StemType
from stemscribe.transcription.pipeline import Transcriber, transcribe

__version__ = "0.1.0"

__all__ = [
    "Audio",
    "AudioError",
    "AudioTooLongError",
    "CorruptAudioError",
    "EmptyAudioError",
    "Family",
    "Instrument",
    "InvalidOptionError",
    "ModelError",
    "NotAudioError",
    "NoteEvent",
    "Result",
    "SeparationUnavailableError",
    "StemType",
    "StemscribeError",
    "Transcriber",
    "load_audio",
    "transcribe",
    "__version__",
]
