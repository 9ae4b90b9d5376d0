"""Render stemscribe/data/example.flac: a 12-second band (drums, bass, piano, lead) with FluidSynth.

Run once by the maintainers (needs the `fluidsynth` and `fluid-soundfont-gm` Debian packages); the
clip and its ground truth (example.mid) ship in the package for the README's first command.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pretty_midi

SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
OUT = Path(__file__).resolve().parent.parent / "stemscribe" / "data"


def build() -> pretty_midi.PrettyMIDI:
    beat = 0.5  # 120 BPM
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    drums = pretty_midi.Instrument(0, is_drum=True, name="Drums")
    bass = pretty_midi.Instrument(33, name="Bass")
    piano = pretty_midi.Instrument(0, name="Piano")
    lead = pretty_midi.Instrument(73, name="Flute")
    chords = [(45, [57, 60, 64]), (41, [53, 57, 60]), (36, [55, 60, 64]), (43, [55, 59, 62])]  # Am F C G
    melody = [76, 74, 72, 74, 76, 76, 76, None, 74, 74, 74, None, 76, 79, 79, None,
              76, 74, 72, 74, 76, 76, 76, 76, 74, 74, 76, 74, 72, None, None, None]  # fmt: skip
    for bar in range(6):
        t0 = bar * 4 * beat
        root, triad = chords[bar % 4]
        for k in range(8):
            t = t0 + k * beat / 2
            drums.notes.append(pretty_midi.Note(70 + 10 * (k % 2 == 0), 42, t, t + 0.05))
            if k in (0, 3, 4):
                drums.notes.append(pretty_midi.Note(110, 36, t, t + 0.1))
            if k in (2, 6):
                drums.notes.append(pretty_midi.Note(100, 38, t, t + 0.1))
        for k, off in enumerate((0, 0, 7, 12)):
            bass.notes.append(pretty_midi.Note(100, root + off, t0 + k * beat, t0 + (k + 0.9) * beat))
        for k in (0, 2):
            for p in triad:
                piano.notes.append(pretty_midi.Note(72, p, t0 + k * beat, t0 + (k + 1.8) * beat))
        for k in range(4):
            p = melody[(bar * 4 + k) % len(melody)]
            if p is not None:
                lead.notes.append(pretty_midi.Note(95, p, t0 + k * beat, t0 + (k + 0.95) * beat))
    pm.instruments.extend([drums, bass, piano, lead])
    return pm


def main() -> None:
    pm = build()
    OUT.mkdir(parents=True, exist_ok=True)
    pm.write(str(OUT / "example.mid"))
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "example.wav"
        subprocess.run(
            [
                "fluidsynth",
                "-ni",
                "-q",
                "-g",
                "0.7",
                "-F",
                str(wav),
                "-r",
                "22050",
                SOUNDFONT,
                str(OUT / "example.mid"),
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                "ffmpeg",
                "-loglevel",
                "error",
                "-y",
                "-i",
                str(wav),
                "-t",
                "12.5",
                "-ac",
                "1",
                str(OUT / "example.flac"),
            ],
            check=True,
        )


if __name__ == "__main__":
    main()
