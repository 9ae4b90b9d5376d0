"""The exceptions stemscribe raises.

StemscribeError
├── AudioError                 the input could not be used as audio
│   ├── NotAudioError          no decoder recognised the content
│   ├── EmptyAudioError        decoded to zero samples
│   ├── CorruptAudioError      recognised but truncated or damaged
│   └── AudioLimitError        outside a decoding limit (sample rate, channels), by its header
│       ├── AudioTooLongError  longer than the configured cap
│       └── AudioTooLargeError channels x rate x duration above the decoding budget
├── InvalidOptionError         an argument out of range (unknown stem type, ...)
├── ModelError                 a model's weights are missing, damaged or failed to run
├── SeparationUnavailableError no separation backend can serve the request
├── ScoreUnavailableError      sheet music needs a library that is not installed (the score extra)
│   └── EngravingError         the score of this result could not be written or laid out
└── ConfigurationError         the settings cannot work together (scale-out without a shared secret)
"""

from __future__ import annotations


class StemscribeError(Exception):
    """Base class of every error stemscribe raises on purpose."""


class AudioError(StemscribeError):
    """The input could not be turned into audio samples."""


class NotAudioError(AudioError):
    """No decoder recognised the input as audio."""


class EmptyAudioError(AudioError):
    """The input decoded to no samples at all."""


class CorruptAudioError(AudioError):
    """The input looks like audio but is truncated or damaged."""


class AudioLimitError(AudioError):
    """The audio is outside one of the decoding limits (`audio.DecodeLimits`); `limit` names which."""

    def __init__(self, message: str, *, limit: str = "") -> None:
        super().__init__(message)
        self.limit = limit


class AudioTooLongError(AudioLimitError):
    """The audio is longer than the configured maximum duration."""

    def __init__(self, message: str, *, limit: str = "max_duration") -> None:
        super().__init__(message, limit=limit)


class AudioTooLargeError(AudioLimitError):
    """Decoding the audio would produce more samples (channels x rate x duration) than allowed."""

    def __init__(self, message: str, *, limit: str = "max_samples") -> None:
        super().__init__(message, limit=limit)


class InvalidOptionError(StemscribeError, ValueError):
    """An option has a value stemscribe does not accept."""


class ModelError(StemscribeError):
    """A model could not be loaded or run."""


class SeparationUnavailableError(StemscribeError):
    """No separation backend can serve this request (for example, weights not fetched)."""


class ScoreUnavailableError(StemscribeError):
    """Sheet music needs a library that is not installed (music21, verovio, cairosvg, pypdf: the
    `score` extra), or the engraver could not lay out the score."""


class EngravingError(ScoreUnavailableError):
    """The libraries are there, but the score of this result could not be written or laid out."""


class ConfigurationError(StemscribeError):
    """The settings cannot work together (for example scale-out without a shared signing key)."""
