"""training.transcriber.physical: the model-based voices sound at the pitch their labels say."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from stemscribe.stems import Family
from stemscribe.transcription.pitch_model import PitchModel
from tests.training.transcriber.judge import heard
from training.transcriber.physical import (
    BARS,
    FM,
    bar_part,
    fm_part,
    organ_part,
    physical_part,
    piano_part,
    reed_part,
)
from training.transcriber.voices import VariedRenderer

SR = 22050
TIMGM = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")


def level_at(audio: np.ndarray, seconds: float) -> float:
    i = int(seconds * SR)
    return float(np.abs(audio[i : i + 2205]).max())


def strongest_hz(audio: np.ndarray) -> float:
    """The frequency of the strongest peak of the first second's spectrum."""
    spectrum = np.abs(np.fft.rfft(audio[:SR] * np.hanning(SR)))
    return float(np.fft.rfftfreq(SR, 1 / SR)[int(np.argmax(spectrum))])


@pytest.mark.parametrize("make", [bar_part, organ_part], ids=["bars", "organ"])
def test_bars_and_organs_have_their_strongest_partial_at_the_labelled_pitch(make) -> None:  # type: ignore[no-untyped-def]
    # basic-pitch is no judge here: on near-sinusoidal partials it hears a glockenspiel's 2.71 mode or
    # an organ's 2' stop 20 dB down as the note; the physical claim is that the fundamental dominates.
    rng = np.random.default_rng(12)
    for _ in range(40):
        note = int(rng.integers(36, 90))
        audio = make(rng, [(0.0, 1.0, note, 100)], SR * 2, 0.5)
        assert np.isfinite(audio).all() and 0 < np.abs(audio).max() <= 0.5
        f0 = 440.0 * 2 ** ((note - 69) / 12)
        assert abs(12 * np.log2(strongest_hz(audio) / f0)) < 0.3, (make.__name__, note)


VOICES = {
    "reeds": lambda rng, notes, n: reed_part(rng, notes, n, 0.5),
    "piano": lambda rng, notes, n: piano_part(rng, notes, n, 0.5),
    **{
        f"fm-{f.value}": functools.partial(lambda f, rng, notes, n: fm_part(rng, f, notes, n, 0.5), f)
        for f in FM
    },
}


@pytest.mark.parametrize("name", sorted(VOICES))
def test_model_based_voices_sound_at_the_labelled_pitch(pitch: PitchModel, name: str) -> None:
    rng = np.random.default_rng([11, sorted(VOICES).index(name)])
    low, high = (31, 52) if name == "fm-bass" else (48, 84)
    for _ in range(3):
        note = int(rng.integers(low, high))
        audio = VOICES[name](rng, [(0.0, 1.0, note, 100)], SR * 2)
        assert audio.shape == (SR * 2,) and audio.dtype == np.float32
        assert np.isfinite(audio).all() and 0 < np.abs(audio).max() <= 0.5
        assert heard(pitch, audio) == note, name
        assert level_at(audio, 1.6) < 0.2 * level_at(audio, 0.1), "a note stops once released"


def test_struck_bars_and_pianos_decay_while_held_and_organs_sustain() -> None:
    rng = np.random.default_rng(2)
    held = [(0.0, 3.0, 72, 100)]
    for _ in range(2 * len(BARS)):
        bars = bar_part(rng, held, SR * 3, 0.5)
        assert level_at(bars, 2.5) < 0.5 * level_at(bars, 0.05)
    piano = piano_part(rng, held, SR * 3, 0.5)
    assert level_at(piano, 2.5) < 0.5 * level_at(piano, 0.05)
    for _ in range(4):
        organ = organ_part(rng, held, SR * 3, 0.5)
        assert level_at(organ, 2.5) > 0.4 * level_at(organ, 0.05)


def test_softer_notes_are_quieter() -> None:
    notes = [(0.0, 0.8, 60, 120), (1.0, 1.8, 60, 40)]
    for make in (bar_part, piano_part, reed_part, organ_part):
        audio = make(np.random.default_rng(1), notes, SR * 2, 0.5)
        assert level_at(audio, 1.02) < 0.7 * level_at(audio, 0.02), make.__name__


def test_every_family_the_shares_name_has_a_voice() -> None:
    from training.transcriber.voices import PHYSICAL_SHARE

    for family in PHYSICAL_SHARE:
        assert physical_part(np.random.default_rng(0), family, [(0.0, 0.5, 48, 90)], SR, 0.5) is not None
    assert physical_part(np.random.default_rng(0), Family.STRINGS, [(0.0, 0.5, 60, 90)], SR, 0.5) is None


def test_model_based_voices_are_drawn_only_with_a_physical_share() -> None:
    pytest.importorskip("tinysoundfont")
    if not TIMGM.is_file():
        pytest.skip(f"{TIMGM} absent (Debian package timgm6mb-soundfont)")
    events = [(0.1, 1, 0, 64, 100), (0.9, 0, 0, 64, 0)]
    programs = {0: (0, 0, 12)}  # a marimba: the keys family
    varied = VariedRenderer((TIMGM,), samples={})
    takes = []
    for share in (0.0, 0.0, 1e9):  # a huge share: every keys part is a model-based voice
        varied.physical_share = share
        varied.rng = np.random.default_rng(4)
        takes.append(varied.render(events, 1.5, programs))
    np.testing.assert_array_equal(takes[0], takes[1])
    assert not np.allclose(takes[0], takes[2])
    rng = np.random.default_rng(4)
    rng.random()  # the model-based voices' draw (the extra timbres draw nothing at extra_share 0)
    expected = varied._treat(
        rng, physical_part(rng, Family.KEYS, [(0.1, 0.9, 64, 100)], len(takes[2]), varied.level)
    )
    np.testing.assert_allclose(takes[2], expected, atol=1e-6)
