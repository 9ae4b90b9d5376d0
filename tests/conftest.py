"""Fixtures that make their own audio: tones, chords, clicks and notes rendered with FluidSynth."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

SR = 22050
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")


def tone(
    pitch: int, start: float, end: float, *, sr: int = SR, total: float | None = None, amp: float = 0.3
) -> np.ndarray:
    """A harmonic tone (5 partials, decaying) at MIDI `pitch` between `start` and `end` seconds."""
    n = int((total if total is not None else end + 0.5) * sr)
    out = np.zeros(n, dtype=np.float32)
    t = np.arange(int((end - start) * sr)) / sr
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    wave = sum((0.6**k) * np.sin(2 * np.pi * f0 * (k + 1) * t) for k in range(5))
    env = np.minimum(1.0, t / 0.01) * np.exp(-t * 1.5) * np.minimum(1.0, (t[-1] - t) / 0.02 + 1e-3)
    s = int(start * sr)
    out[s : s + t.size] += (amp * wave * env).astype(np.float32)
    return out


def melody(notes: list[tuple[int, float, float]], total: float, *, sr: int = SR) -> np.ndarray:
    """Sum of `tone`s: (pitch, start, end) each."""
    out = np.zeros(int(total * sr), dtype=np.float32)
    for p, s, e in notes:
        out += tone(p, s, e, sr=sr, total=total)
    return out


def render_midi(midi_path: Path, wav_path: Path, *, sr: int = 44100) -> Path:
    """Render a MIDI file with FluidSynth and the GM SoundFont; skips the test when either is missing."""
    if shutil.which("fluidsynth") is None or not SOUNDFONT.is_file():
        pytest.skip("FluidSynth or FluidR3_GM.sf2 missing (Debian: fluidsynth fluid-soundfont-gm)")
    subprocess.run(
        [
            "fluidsynth",
            "-ni",
            "-q",
            "-g",
            "0.6",
            "-F",
            str(wav_path),
            "-r",
            str(sr),
            str(SOUNDFONT),
            str(midi_path),
        ],
        check=True,
        capture_output=True,
    )
    return wav_path


class Signals:
    """The synthetic-signal makers, handed to tests as the `signals` fixture."""

    sr = SR
    tone = staticmethod(tone)
    melody = staticmethod(melody)
    render_midi = staticmethod(render_midi)


@pytest.fixture(scope="session")
def signals() -> type[Signals]:
    return Signals


@pytest.fixture(scope="session")
def transcriber():
    from stemscribe import Transcriber

    return Transcriber(drums="dsp")


@pytest.fixture(scope="session")
def rendered_band(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pretty_midi.PrettyMIDI]:  # noqa: F821
    """A 6-second bass + piano + drums clip rendered with FluidSynth, and its MIDI (the ground truth)."""
    import pretty_midi

    folder = tmp_path_factory.mktemp("band")
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    bass = pretty_midi.Instrument(33)
    piano = pretty_midi.Instrument(0)
    drums = pretty_midi.Instrument(0, is_drum=True)
    for i, root in enumerate([40, 45, 43, 38, 40, 45]):
        t = i * 1.0
        bass.notes.append(pretty_midi.Note(100, root, t + 0.1, t + 0.9))
        for p in (root + 24, root + 28, root + 31):
            piano.notes.append(pretty_midi.Note(80, p, t + 0.1, t + 0.9))
        drums.notes.append(pretty_midi.Note(110, 36, t + 0.1, t + 0.2))
        drums.notes.append(pretty_midi.Note(100, 38, t + 0.6, t + 0.7))
    pm.instruments.extend([bass, piano, drums])
    mid = folder / "band.mid"
    pm.write(str(mid))
    wav = render_midi(mid, folder / "band.wav")
    return wav, pm
