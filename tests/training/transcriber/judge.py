"""basic-pitch as the judge of the pitch a synthetic voice sounds at (the timbre tests' helper)."""

from __future__ import annotations

import numpy as np

from stemscribe.transcription.pitch_model import MIDI_OFFSET, PitchModel


def heard(pitch: PitchModel, audio: np.ndarray) -> int:
    """The MIDI pitch basic-pitch hears most in `audio`."""
    audio = np.concatenate([np.zeros(2205), audio, np.zeros(11025)])
    post = pitch.run((audio / max(float(np.abs(audio).max()), 1e-9) * 0.8).astype(np.float32), contour=False)
    return int(np.argmax(post.note.sum(axis=0))) + MIDI_OFFSET
