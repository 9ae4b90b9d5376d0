"""Test helpers for the network's data: basic-pitch as the judge of the pitch a synthetic voice sounds at,
and a spy on what a renderer is asked to play."""

from __future__ import annotations

import numpy as np

from stemscribe.transcription.pitch_model import MIDI_OFFSET, PitchModel


def heard(pitch: PitchModel, audio: np.ndarray) -> int:
    """The MIDI pitch basic-pitch hears most in `audio`."""
    audio = np.concatenate([np.zeros(2205), audio, np.zeros(11025)])
    post = pitch.run((audio / max(float(np.abs(audio).max()), 1e-9) * 0.8).astype(np.float32), contour=False)
    return int(np.argmax(post.note.sum(axis=0))) + MIDI_OFFSET


def record_note_ons(renderer: object) -> list[tuple[float, int]]:
    """Make `renderer.render` also append (time, key) of every pitched note-on it is given (channel 10's
    drums aside) to the returned list, which a test clears between clips."""
    played: list[tuple[float, int]] = []
    render = renderer.render  # type: ignore[attr-defined]

    def spy(events, seconds, programs):  # type: ignore[no-untyped-def]
        played.extend((round(t, 6), key) for t, on, ch, key, _ in events if on and ch != 9)
        return render(events, seconds, programs)

    renderer.render = spy  # type: ignore[attr-defined]
    return played
