"""training.transcriber.voices: every new timbre sounds at the pitch its label says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stemscribe.stems import Family
from stemscribe.transcription.pitch_model import PitchModel
from stemscribe.transcription.timbre import TIMBRE_FAMILIES
from tests.training.transcriber.judge import heard
from training.transcriber.voices import (
    LMMS_DIR,
    SALAMANDER_DIR,
    VariedRenderer,
    draw_voice,
    load_salamander,
    load_samples,
    notes_of,
    pluck_note,
    pluck_part,
    synth_part,
)

TIMGM = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")


@pytest.mark.parametrize("family", TIMBRE_FAMILIES, ids=lambda f: f.value)
def test_synthetic_voices_sound_at_the_labelled_pitch(pitch: PitchModel, family) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng([3, TIMBRE_FAMILIES.index(family)])
    for _ in range(3):
        voice = draw_voice(rng, family)
        note = int(rng.integers(31, 52)) if family.value == "bass" else int(rng.integers(45, 82))
        audio = synth_part(rng, voice, [(0.0, 1.0, note, 100)], 22050 * 2, 1.0)
        assert np.isfinite(audio).all() and np.abs(audio).max() > 0
        assert heard(pitch, audio) == note, voice


def test_lmms_samples_sound_at_the_labelled_pitch(pitch: PitchModel) -> None:
    if not LMMS_DIR.is_dir():
        pytest.skip(f"{LMMS_DIR} absent (Debian package lmms-common)")
    bank = load_samples()
    assert bank, "lmms-common is installed but none of its samples loaded"
    rng = np.random.default_rng(5)
    for voices in bank.values():
        for voice in voices:
            note = voice.root + int(rng.integers(-4, 5))
            audio = voice.note(note, 100, held=1.2, release=0.1)
            assert heard(pitch, audio) == note, (voice.family, voice.root)
            long = voice.note(voice.root, 90, held=20.0, release=0.2)
            if voice.sustains:  # looped: it lasts as long as the note is held
                assert len(long) > 20 * 22050 and np.abs(long[-30000:-10000]).max() > 0.01


def test_plucked_strings_sound_at_the_labelled_pitch_and_decay(pitch: PitchModel) -> None:
    rng = np.random.default_rng(9)
    for note in (28, 40, 47, 55, 64, 76):
        tone = pluck_note(rng, note, 100, 2.0, brightness=12.0, decay=1.5, pick=0.2)
        assert np.isfinite(tone).all()
        assert heard(pitch, tone) == note
        early, late = (np.abs(tone[int(t * 22050) : int(t * 22050) + 2205]).max() for t in (0.05, 1.8))
        assert late < 0.3 * early  # a plucked string dies away while held
    part = pluck_part(rng, Family.GUITAR, [(0.0, 0.5, 52, 90), (0.5, 1.0, 59, 90)], 22050 * 2, 0.5)
    assert part.shape == (44100,) and 0 < np.abs(part).max() <= 0.5


def test_salamander_piano_sounds_at_the_labelled_pitch(pitch: PitchModel) -> None:
    piano = load_salamander()
    if piano is None:
        pytest.skip(f"{SALAMANDER_DIR} absent (make training-samples)")
    assert len(piano.voices) == 30 and sorted(v.root for v in piano.voices)[:3] == [21, 24, 27]
    for note in (34, 40, 61, 62, 86):  # between samples too, from the nearest one
        loud, soft = piano.note(note, 110, 0.8, 0.2), piano.note(note, 40, 0.8, 0.2)
        assert heard(pitch, loud) == note
        assert np.abs(soft).max() < 0.5 * np.abs(loud).max()


def test_extra_timbres_are_drawn_only_with_an_extra_share() -> None:
    pytest.importorskip("tinysoundfont")
    if not TIMGM.is_file():
        pytest.skip(f"{TIMGM} absent (Debian package timgm6mb-soundfont)")
    events = [(0.1, 1, 0, 52, 100), (0.9, 0, 0, 52, 0)]
    programs = {0: (0, 0, 25)}  # a steel guitar
    varied = VariedRenderer((TIMGM,), samples={})
    takes = []
    for share in (0.0, 0.0, 1e9):  # a huge share: every guitar part is plucked strings
        varied.extra_share = share
        varied.rng = np.random.default_rng(4)
        takes.append(varied.render(events, 1.5, programs))
    np.testing.assert_array_equal(takes[0], takes[1])
    assert not np.allclose(takes[0], takes[2])
    varied.rng = np.random.default_rng(4)
    rng = np.random.default_rng(4)
    rng.random()  # the extra draw
    expected = varied._treat(
        rng, pluck_part(rng, Family.GUITAR, [(0.1, 0.9, 52, 100)], len(takes[2]), varied.level)
    )
    np.testing.assert_allclose(takes[2], expected, atol=1e-6)


def test_notes_of_pairs_events() -> None:
    events = [(0.0, 1, 0, 60, 90), (0.5, 1, 0, 60, 80), (0.6, 0, 0, 60, 0), (1.0, 0, 0, 60, 0)]
    assert notes_of(events) == [(0.0, 0.6, 60, 90), (0.5, 1.0, 60, 80)]


def test_varied_renderer_is_plain_without_rng_and_deterministic_with_one() -> None:
    pytest.importorskip("tinysoundfont")
    if not TIMGM.is_file():
        pytest.skip(f"{TIMGM} absent (Debian package timgm6mb-soundfont)")
    from training.drums.data import Renderer

    events = [(0.1, 1, 0, 60, 100), (0.9, 0, 0, 60, 0), (0.2, 1, 1, 43, 90), (1.0, 0, 1, 43, 0)]
    programs = {0: (0, 0, 0), 1: (0, 0, 33)}
    varied = VariedRenderer((TIMGM,), samples={})
    plain = Renderer((TIMGM,)).render(events, 1.5, programs)
    np.testing.assert_allclose(varied.render(events, 1.5, programs), plain, atol=1e-6)
    takes = []
    for _ in range(2):
        varied.rng = np.random.default_rng(11)
        takes.append(varied.render(events, 1.5, programs))
    np.testing.assert_array_equal(takes[0], takes[1])
    assert takes[0].shape == plain.shape and np.abs(takes[0]).max() > 0
