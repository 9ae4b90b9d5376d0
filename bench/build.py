"""Build the benchmark: songs rendered with FluidSynth, with exact ground truth from their MIDI.

Two splits of real material, all cut to windows of about 30 seconds:

- `dev` (`bench/data/`, the split the decoders were tuned on), rendered with FluidR3_GM:
  - `mma`: a Debian `mma` groove of the standard library (drums, bass, chords) on a generated chord
    progression in a random key and tempo, with a generated melody on top, played by a vocal-like General
    MIDI patch (choir, voice oohs, synth voice: it stands in for Suno vocals) in half of the songs and by a
    lead instrument in the others;
  - `chorale`: a Bach chorale from music21's corpus, its four voices given to General MIDI instruments;
  - `blupi`: a Planet Blupi tune (Debian `planetblupi-music-midi`), a multi-instrument General MIDI file.
  With `--material metre` (another folder, `--data`) the dev split is instead waltzes and other 3/4
  grooves of the standard library, its Latin grooves (mambo, salsa, rhumba, ...) and Bach chorales in 3/4
  that the held-out split does not use: dev material for the metre and the tempo, whose default dev songs
  are all in 4/4.
- `heldout` (`bench/data-heldout/<font>/`, nothing is tuned on it): the same kinds of songs from material
  the dev split never uses — grooves of the evaluation-only MMA libraries (casio, kara, yamaha, zoom; zoom's
  are drum machines, so those songs get a generated bass and comping part too), chorales and Blupi tunes
  that the dev split leaves out at its seeds (DEV_SEEDS) — each song rendered twice, with FluidR3_GM and
  with csound's GM bank (`csound-soundfont`), one data folder per SoundFont.

Each song gives one item for the full mix (stem type "mix") and one per instrument family present (stem
type the family's name; drums are the drum channel and the percussive programs 112-127). Every item is a
FLAC file and a JSON file of its reference notes. The window is cut in MIDI before rendering, so the audio
holds exactly the notes of the ground truth: notes that start before the window are left out, notes still
sounding at its end are cut there. Sustain pedal, bank select and pitch bends are dropped; every note is
kept, auxiliary percussion and programs 112-127 included.

Everything is deterministic from `--seed`. Run `python -m bench.build` (both splits, a few minutes on one
core) or `python -m bench.build --split dev|heldout`, or `python -m bench.build --split dev --material metre
--seed N --data DIR`.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stemscribe.stems import Family, family_of_program

DATA_DIR = Path(__file__).resolve().parent / "data"
HELDOUT_DIR = Path(__file__).resolve().parent / "data-heldout"
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
CSOUND_SOUNDFONT = Path("/usr/share/sounds/sf2/sf_GMbank.sf2")
# The held-out split's renders: font name (its data folder under HELDOUT_DIR) -> SoundFont.
FONTS: dict[str, Path] = {"fluidr3": SOUNDFONT, "csound": CSOUND_SOUNDFONT}
DEV_FONT = "fluidr3"
MMA_LIB = Path("/usr/share/mma/lib")
MMA_STDLIB = MMA_LIB / "stdlib"
BLUPI_DIR = Path("/usr/share/planetblupi/music")
SAMPLE_RATE = 44100
WINDOW = 30.0
END_MARGIN = 0.05  # notes starting in the last 50 ms of a window are left out (no audible onset)
PEAK = 0.95
MIN_NOTES = 3  # a part with fewer notes inside the window is left out of the song
FORMAT_VERSION = 2  # 2: programs 112-127 kept (1 dropped them); the held-out split
DEFAULT_SEED = 2024
HELDOUT_SEED = 15
# The dev seeds that figures were tuned and reported on: the held-out split leaves out their songs.
DEV_SEEDS: tuple[int, ...] = (DEFAULT_SEED, 7)
SPLITS = ("dev", "heldout")
# What a dev split is made of: "standard" (PLAN and GROOVES), "metre" (METRE_PLAN: 3/4 and Latin grooves,
# 3/4 chorales) or "latin" (LATIN_PLAN: Latin grooves only, at the held-out split's tempi).
MATERIALS = ("standard", "metre", "latin")

# The songs, in order; the first third is the `--quick` set and covers every source.
PLAN: tuple[str, ...] = (
    "mma", "chorale", "blupi", "mma",
    "mma", "chorale", "mma", "blupi",
    "mma", "chorale", "mma", "blupi",
)  # fmt: skip
QUICK_SONGS = len(PLAN) // 3

# The metre material's songs, in order: its mma slots alternate TRIPLE_GROOVES and LATIN_GROOVES.
METRE_PLAN: tuple[str, ...] = ("mma", "mma", "chorale", "mma") * 3
# The latin material's songs: LATIN_GROOVES in a seed's order.
LATIN_PLAN: tuple[str, ...] = ("mma",) * 12

# The held-out split's songs, in order; its first third is its `--quick` set.
HELDOUT_PLAN: tuple[str, ...] = PLAN

# 4/4 mma grooves (standard library) without a choir track, so that a vocal melody has its own stem.
GROOVES: tuple[str, ...] = (
    "8Beat", "8BeatPlus", "BossaNovaPlus", "PopBallad", "ShuffleBoggie", "Swing", "FolkRock", "Samba",
    "CountrySwing", "JazzCombo", "SoftRock", "BasicRock", "Ballad", "BVFunk", "Ska", "Twist", "Mambo",
    "Salsa", "Trance", "LFusion", "DSoul", "Rhumba", "Bluegrass", "50sRock",
)  # fmt: skip

# The metre material's grooves (standard library, none with a choir track): 3/4 grooves, and Latin 4/4
# grooves whose clave and tresillo rhythms put accents three sixteenths or eighths apart.
TRIPLE_GROOVES: tuple[str, ...] = (
    "Waltz", "Waltz1", "WaltzWalk", "JazzWaltz", "JazzWaltz1", "FastJazzWaltz", "ModernJazzWaltz",
    "CountryWaltz", "CountryWaltz1", "RockWaltz", "BroadwayWaltz", "FrenchWaltz", "FrenchWaltz2",
    "LatinWaltz", "ArpeggioWaltz", "FastWaltz",
)  # fmt: skip
LATIN_GROOVES: tuple[str, ...] = (
    "Mambo", "Mambo1", "Mambo2", "Mambo3", "Salsa", "Rhumba", "JazzRhumba", "ChaCha", "Bolero", "Beguine",
    "Merengue", "Son", "Calypso", "Tango", "CubanGuitar",
)  # fmt: skip

# The held-out split's grooves: 4/4 main grooves of the evaluation-only MMA libraries, as "file:Groove",
# none with a choir track; zoom's are drum machines (drums only). Many play auxiliary percussion.
HELDOUT_GROOVES: dict[str, tuple[str, ...]] = {
    "casio": (
        "funk1:Funk1", "latinfusion:LatinFusion", "dancepop3:DancePop3", "slow16beat:Slow16Beat",
        "worldpop:WorldPop", "fusion:Fusion", "mellowrb:MellowRB", "pop:Pop", "16beat2:16Beat2",
        "trance1:Trance1", "80spop:80sPop", "8beatpop2:8BeatPop2",
    ),
    "kara": (
        "kbossa:kbossaA", "fasttwist:fasttwistA", "twi:TwiMainA", "8beatmotown:8beatmotownA",
        "Kfunk1:Kfunk1A", "kwestballad:kwestballadA", "K50s_rock:50s_RockA",
    ),
    "yamaha": (
        "salsa1:Salsa1MainA", "jazzbossa:JazzBossaA", "mambo:MamboMainA", "salsa2:Salsa2MainA",
        "western:WesternMainA", "jazzbouncy:JazzBouncyMainA", "quando-g.s280:QuandoGSMainA",
    ),
    "zoom": (
        "latin:LATN01", "samba:SAMBA01", "bossa:BOSSA01", "afro:AFRO01", "funk:FUNK01", "mtl:MTL01",
        "dnb:DnB01", "rock:ROCK01",
    ),
}  # fmt: skip
# Parts added to drum-only grooves: bass (program, lowest, highest) and comping programs.
BASS_PATCHES: tuple[tuple[int, int, int], ...] = ((32, 31, 50), (33, 28, 50), (34, 28, 50), (38, 28, 52))
COMP_PROGRAMS: tuple[int, ...] = (0, 4, 16, 25, 27, 89)  # piano, e-piano, organ, guitars, warm pad

# Melody patches: (program, lowest pitch, highest pitch).
VOCAL_PATCHES: tuple[tuple[int, int, int], ...] = ((52, 57, 76), (53, 57, 76), (54, 55, 77))
LEAD_PATCHES: tuple[tuple[int, int, int], ...] = (
    (73, 67, 91),  # flute
    (65, 61, 82),  # alto sax
    (66, 54, 76),  # tenor sax
    (56, 58, 82),  # trumpet
    (40, 62, 88),  # violin
    (80, 60, 84),  # lead 1 (square)
    (81, 60, 84),  # lead 2 (sawtooth)
    (71, 55, 84),  # clarinet
)

NOTE_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)
# Chord progressions as (scale root in semitones, minor?) per bar.
MAJOR_PROGRESSIONS: tuple[tuple[tuple[int, bool], ...], ...] = (
    ((0, False), (7, False), (9, True), (5, False)),  # I V vi IV
    ((9, True), (5, False), (0, False), (7, False)),  # vi IV I V
    ((0, False), (5, False), (7, False), (5, False)),  # I IV V IV
    ((0, False), (9, True), (5, False), (7, False)),  # I vi IV V
    ((2, True), (7, False), (0, False), (9, True)),  # ii V I vi
    ((0, False), (4, True), (5, False), (7, False)),  # I iii IV V
)
MINOR_PROGRESSIONS: tuple[tuple[tuple[int, bool], ...], ...] = (
    ((0, True), (8, False), (3, False), (10, False)),  # i VI III VII
    ((0, True), (5, True), (7, True), (0, True)),  # i iv v i
    ((0, True), (10, False), (8, False), (10, False)),  # i VII VI VII
)
# Melody rhythms of one 4/4 bar, in beats; negative values are rests.
RHYTHMS: tuple[tuple[float, ...], ...] = (
    (1, 1, 1, 1), (2, 1, 1), (1, 1, 2), (1.5, 0.5, 1, 1), (0.5, 0.5, 1, 2), (1, 0.5, 0.5, 2),
    (3, 1), (2, 2), (1, 1, 1, -1), (0.5, 0.5, 0.5, 0.5, 2), (-1, 1, 1, 1), (1.5, 0.5, 2),
)  # fmt: skip
CADENCE_RHYTHMS: tuple[tuple[float, ...], ...] = ((2, -2), (3, -1), (1, 1, -2), (4,))
# The same for one 3/4 bar.
TRIPLE_RHYTHMS: tuple[tuple[float, ...], ...] = (
    (1, 1, 1), (2, 1), (1, 2), (1.5, 0.5, 1), (0.5, 0.5, 1, 1), (1, 0.5, 0.5, 1), (3,), (-1, 1, 1),
    (2, 0.5, 0.5),
)  # fmt: skip
TRIPLE_CADENCE_RHYTHMS: tuple[tuple[float, ...], ...] = ((2, -1), (3,), (1, 1, -1))

# Chorale voices and the instruments each may be given: (soprano, alto, tenor, bass).
CHORALE_VOICES: tuple[tuple[int, ...], ...] = (
    (52, 73, 68, 56, 40),  # choir aahs, flute, oboe, trumpet, violin
    (53, 71, 41, 60, 0),  # voice oohs, clarinet, viola, french horn, piano
    (42, 70, 57, 24, 4),  # cello, bassoon, trombone, nylon guitar, electric piano
    (32, 33, 43, 58, 35),  # acoustic bass, finger bass, contrabass, tuba, fretless bass
)
CHORALE_PART_NAMES = ("Soprano", "Alto", "Tenor", "Bass")


class BuildError(RuntimeError):
    """The benchmark could not be built (a tool or a source file is missing or failed)."""


@dataclass(frozen=True, slots=True)
class Note:
    pitch: int
    start: float
    end: float
    velocity: int


@dataclass(slots=True)
class Part:
    """One instrument of a song: its notes and the controller values it plays with, times in seconds."""

    program: int
    is_drum: bool
    name: str
    notes: list[Note]
    controls: list[tuple[float, int, int]] = field(default_factory=list)  # (time, number, value)

    @property
    def family(self) -> Family:
        return family_of_program(self.program, is_drum=self.is_drum)


@dataclass(slots=True)
class Song:
    song_id: str
    source: str
    description: str
    parts: list[Part]
    duration: float
    quick: bool

    def families(self) -> list[Family]:
        seen: list[Family] = []
        for p in self.parts:
            if p.family not in seen:
                seen.append(p.family)
        order = list(Family)
        return sorted(seen, key=order.index)


# ---------------------------------------------------------------------------------------------- windowing

KEPT_CONTROLS = frozenset({1, 7, 10, 11, 91, 93})  # modulation, volume, pan, expression, reverb, chorus


def cut_window(parts: Sequence[Part], start: float, length: float) -> list[Part]:
    """The parts inside [start, start + length), shifted to start at 0.

    Notes that start before the window are dropped, notes running past its end are cut at the end, notes
    that start in its last 50 ms are dropped; each part keeps the last value of every kept controller set
    before the window. Parts left with fewer than MIN_NOTES notes are dropped.
    """
    end = start + length
    out: list[Part] = []
    for p in parts:
        notes = [
            Note(n.pitch, round(n.start - start, 6), round(min(n.end, end) - start, 6), n.velocity)
            for n in p.notes
            if start <= n.start < end - END_MARGIN and n.end > n.start
        ]
        if len(notes) < MIN_NOTES:
            continue
        before: dict[int, int] = {}
        inside: list[tuple[float, int, int]] = []
        for t, num, val in sorted(p.controls):
            if num not in KEPT_CONTROLS:
                continue
            if t < start:
                before[num] = val
            elif t < end:
                inside.append((round(t - start, 6), num, val))
        controls = [(0.0, num, val) for num, val in sorted(before.items())] + inside
        out.append(
            Part(p.program, p.is_drum, p.name, sorted(notes, key=lambda n: (n.start, n.pitch)), controls)
        )
    return out


def parts_from_midi(path: Path) -> list[Part]:
    """Every part of a MIDI file: auxiliary percussion and programs 112-127 are kept like any other."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(str(path))
    parts = []
    for inst in pm.instruments:
        notes = [Note(int(n.pitch), float(n.start), float(n.end), int(n.velocity)) for n in inst.notes]
        controls = [(float(c.time), int(c.number), int(c.value)) for c in inst.control_changes]
        parts.append(Part(int(inst.program), bool(inst.is_drum), inst.name or "", notes, controls))
    return parts


def parts_to_midi(parts: Sequence[Part]) -> Any:
    """A pretty_midi.PrettyMIDI of the parts (fine tick resolution, so note times survive the round trip)."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=120.0)
    for p in parts:
        inst = pretty_midi.Instrument(program=p.program, is_drum=p.is_drum, name=p.name)
        inst.notes = [pretty_midi.Note(n.velocity, n.pitch, n.start, n.end) for n in p.notes]
        inst.control_changes = [pretty_midi.ControlChange(num, val, t) for t, num, val in p.controls]
        pm.instruments.append(inst)
    return pm


# ------------------------------------------------------------------------------------------------- sources


def _mma_song(
    index: int,
    groove: str,
    rng: np.random.Generator,
    workdir: Path,
    *,
    tempo: tuple[int, int] = (84, 132),
    beats_per_bar: int = 4,
) -> Song:
    """An mma groove (`Name`, or `lib/file:Name` outside the standard library) with a generated melody.

    Grooves with no pitched part (drum machines) get a generated bass line and comping part first.
    `beats_per_bar` is the groove's bar (3 for a waltz: its chart has a chord per 3/4 bar).
    """
    bpm = int(rng.integers(*tempo))
    key = int(rng.integers(0, 12))
    minor = bool(rng.random() < 0.3)
    progressions = MINOR_PROGRESSIONS if minor else MAJOR_PROGRESSIONS
    progression = progressions[int(rng.integers(len(progressions)))]
    bar = beats_per_bar * 60.0 / bpm
    offset_bars = 1
    n_bars = math.ceil(WINDOW / bar) + offset_bars + 1
    chords = [progression[b % len(progression)] for b in range(n_bars)]
    lines = [f"Tempo {bpm}", f"RndSeed {int(rng.integers(1, 2**31))}", f"Groove {groove}"]
    for b, (root, is_minor) in enumerate(chords):
        lines.append(f"{b + 1} {NOTE_NAMES[(key + root) % 12]}{'m' if is_minor else ''}")
    mma_file = workdir / f"song{index:02d}.mma"
    mma_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    midi_file = mma_file.with_suffix(".mid")
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.run(
        ["mma", "-f", str(midi_file), str(mma_file)], capture_output=True, text=True, env=env, check=False
    )
    if proc.returncode != 0 or not midi_file.exists():
        raise BuildError(f"mma failed on groove {groove}: {proc.stdout.strip()} {proc.stderr.strip()}")
    parts = parts_from_midi(midi_file)
    from stemscribe.stems import gm_program_name

    added = ""
    if (
        all(p.is_drum for p in parts) and beats_per_bar == 4
    ):  # a drum machine: give it a bass line and comping
        bass_program, bass_low, bass_high = BASS_PATCHES[int(rng.integers(len(BASS_PATCHES)))]
        bass = generate_bass(rng, key=key, chords=chords, bpm=bpm, low=bass_low, high=bass_high)
        comp_program = COMP_PROGRAMS[int(rng.integers(len(COMP_PROGRAMS)))]
        comp = generate_comp(rng, key=key, chords=chords, bpm=bpm)
        parts.append(Part(bass_program, False, "Bass", bass, [(0.0, 7, 105)]))
        parts.append(Part(comp_program, False, "Comp", comp, [(0.0, 7, 85)]))
        added = f"; bass on {gm_program_name(bass_program)}, comping on {gm_program_name(comp_program)}"

    present = {p.family for p in parts}
    vocal = index % 2 == 0
    patches: list[tuple[int, int, int]] = []
    for pool in (VOCAL_PATCHES, LEAD_PATCHES) if vocal else (LEAD_PATCHES, VOCAL_PATCHES):
        patches = [patch for patch in pool if family_of_program(patch[0]) not in present]
        if patches:
            break
    if not patches:
        raise BuildError(f"no melody patch whose family is free in groove {groove}")
    program, low, high = patches[int(rng.integers(len(patches)))]
    scale = MINOR_SCALE if minor else MAJOR_SCALE
    melody = generate_melody(
        rng, key=key, scale=scale, chords=chords, bpm=bpm, low=low, high=high, beats_per_bar=beats_per_bar
    )
    parts.append(Part(program, False, "Melody", melody, [(0.0, 7, 110)]))

    start = offset_bars * bar
    mode = "minor" if minor else "major"
    metre = "" if beats_per_bar == 4 else f" in {beats_per_bar}/4"
    description = (
        f"mma groove {groove}{metre}, {bpm} BPM, {NOTE_NAMES[key]} {mode}{added}; "
        f"melody on {gm_program_name(program)}"
    )
    return Song("", "mma", description, cut_window(parts, start, WINDOW), WINDOW, False)


# Bass rhythms of one 4/4 bar: (beat, length in beats, interval above the chord root in semitones).
BASS_RHYTHMS: tuple[tuple[tuple[float, float, int], ...], ...] = (
    ((0, 1.5, 0), (1.5, 0.5, 0), (2, 1.5, 7), (3.5, 0.5, 0)),
    ((0, 1, 0), (1, 1, 7), (2, 1, 12), (3, 1, 7)),
    ((0, 2, 0), (2, 2, 7)),
    ((0, 0.75, 0), (0.75, 0.75, 0), (2, 1, 7), (3, 0.5, 12), (3.5, 0.5, 7)),
)
# Comping rhythms of one 4/4 bar: (beat, length in beats) of a block triad.
COMP_RHYTHMS: tuple[tuple[tuple[float, float], ...], ...] = (
    ((0, 4),), ((0, 2), (2, 2)), ((1, 0.5), (3, 0.5)), ((0, 1.5), (1.5, 2.5)),
)  # fmt: skip


def generate_bass(
    rng: np.random.Generator,
    *,
    key: int,
    chords: Sequence[tuple[int, bool]],
    bpm: float,
    low: int,
    high: int,
) -> list[Note]:
    """A bass line over one chord per 4/4 bar: one rhythm per song; root, fifth, octave in [low, high]."""
    beat = 60.0 / bpm
    rhythm = BASS_RHYTHMS[int(rng.integers(len(BASS_RHYTHMS)))]
    notes = []
    for b, (root, _) in enumerate(chords):
        base = low + (key + root - low) % 12
        for t, length, interval in rhythm:
            pitch = base + interval
            while pitch > high:
                pitch -= 12
            start = (b * 4 + t) * beat
            velocity = int(np.clip(rng.normal(92, 8), 60, 120))
            notes.append(Note(pitch, round(start, 6), round(start + length * beat * 0.85, 6), velocity))
    return notes


def generate_comp(
    rng: np.random.Generator, *, key: int, chords: Sequence[tuple[int, bool]], bpm: float
) -> list[Note]:
    """Block triads over one chord per 4/4 bar, voiced between G3 and F#4, one rhythm for the song."""
    beat = 60.0 / bpm
    rhythm = COMP_RHYTHMS[int(rng.integers(len(COMP_RHYTHMS)))]
    notes = []
    for b, (root, is_minor) in enumerate(chords):
        pcs = [(key + root) % 12, (key + root + (3 if is_minor else 4)) % 12, (key + root + 7) % 12]
        pitches = sorted(55 + (pc - 55) % 12 for pc in pcs)
        for t, length in rhythm:
            start = (b * 4 + t) * beat
            velocity = int(np.clip(rng.normal(72, 8), 45, 105))
            for pitch in pitches:
                notes.append(Note(pitch, round(start, 6), round(start + length * beat * 0.9, 6), velocity))
    return notes


def generate_melody(
    rng: np.random.Generator,
    *,
    key: int,
    scale: Sequence[int],
    chords: Sequence[tuple[int, bool]],
    bpm: float,
    low: int,
    high: int,
    beats_per_bar: int = 4,
) -> list[Note]:
    """A monophonic melody over one chord per bar (4/4, or 3/4 with `beats_per_bar` 3): chord tones on
    strong beats (1 and 3 of 4/4, 1 of 3/4), steps in between.

    Four-bar phrases end on a long note and a rest; pitches stay in [low, high]; velocities follow a phrase
    contour with some randomness.
    """
    beat = 60.0 / bpm
    pitches = [p for p in range(low, high + 1) if (p - key) % 12 in scale]
    current = pitches[len(pitches) // 2]
    notes: list[Note] = []
    for b, (root, is_minor) in enumerate(chords):
        third = 3 if is_minor else 4
        chord_pcs = {(key + root) % 12, (key + root + third) % 12, (key + root + 7) % 12}
        cadence = b % 4 == 3
        if beats_per_bar == 4:
            pool = CADENCE_RHYTHMS if cadence else RHYTHMS
        else:
            pool = TRIPLE_CADENCE_RHYTHMS if cadence else TRIPLE_RHYTHMS
        rhythm = pool[int(rng.integers(len(pool)))]
        t = 0.0
        for dur in rhythm:
            length = abs(dur)
            if dur > 0:
                strong = float(t).is_integer() and int(t) % 2 == 0 and (beats_per_bar == 4 or t == 0)
                if strong or rng.random() < 0.25:
                    candidates = [p for p in pitches if p % 12 in chord_pcs and abs(p - current) <= 7]
                    if not candidates:
                        candidates = [p for p in pitches if p % 12 in chord_pcs]
                    weights = np.array([1.0 / (1 + abs(p - current)) for p in candidates])
                    current = int(rng.choice(candidates, p=weights / weights.sum()))
                else:
                    i = pitches.index(current) if current in pitches else len(pitches) // 2
                    step = int(rng.choice([-2, -1, -1, 1, 1, 2]))
                    j = i + step
                    if not 0 <= j < len(pitches):
                        j = i - step
                    current = pitches[j]
                start = (b * beats_per_bar + t) * beat
                legato = float(rng.uniform(0.78, 0.95))
                contour = 10 * math.sin(math.pi * ((b % 4) * beats_per_bar + t) / (4 * beats_per_bar))
                velocity = int(np.clip(80 + contour + rng.normal(0, 8), 45, 120))
                notes.append(
                    Note(current, round(start, 6), round(start + length * beat * legato, 6), velocity)
                )
            t += length
    return notes


def _chorale_song(path: str, rng: np.random.Generator) -> Song:
    from music21 import corpus

    score = corpus.parse(path)
    by_name = {p.partName: p for p in score.parts}
    bpm = int(rng.integers(76, 101))
    beat = 60.0 / bpm
    length_q = float(score.highestTime) + 1.0  # a beat's breath between verses
    verses = max(1, math.ceil(WINDOW / (length_q * beat)))
    parts: list[Part] = []
    names = []
    for voice, options in zip(CHORALE_PART_NAMES, CHORALE_VOICES, strict=True):
        program = int(options[int(rng.integers(len(options)))])
        notes: list[Note] = []
        for v in range(verses):
            for el in by_name[voice].stripTies().flatten().notes:
                start = (v * length_q + float(el.offset)) * beat
                end = start + float(el.quarterLength) * beat * 0.97
                for pitch in el.pitches:
                    velocity = int(np.clip(rng.normal(82, 9), 50, 115))
                    notes.append(Note(int(pitch.midi), round(start, 6), round(end, 6), velocity))
        parts.append(Part(program, False, voice, notes, [(0.0, 7, 100)]))
        names.append(program)
    from stemscribe.stems import gm_program_name

    voices = ", ".join(gm_program_name(p) for p in names)
    description = f"chorale {path.split('/')[-1]}, {bpm} BPM, {verses} verse(s); SATB on {voices}"
    return Song("", "chorale", description, cut_window(parts, 0.0, WINDOW), WINDOW, False)


def _blupi_song(path: Path, rng: np.random.Generator) -> Song:
    parts = parts_from_midi(path)
    start = round(float(rng.uniform(8.0, 90.0)), 2)
    description = f"Planet Blupi {path.stem}, window from {start:.2f} s"
    return Song("", "blupi", description, cut_window(parts, start, WINDOW), WINDOW, False)


def chorale_paths() -> list[str]:
    """music21 corpus paths of the four-voice Bach chorales (plain `bwvN.M` numbers), sorted."""
    import re

    from music21 import corpus

    names = sorted({p.stem for p in corpus.getComposer("bach", fileExtensions=("mxl",))})
    return [f"bach/{n}" for n in names if re.fullmatch(r"bwv\d+\.\d+", n)]


@functools.cache
def _chorale_info(path: str) -> tuple[bool, tuple[int, ...]]:
    """Whether a corpus chorale has exactly the four SATB parts, and its soprano's pitches (or ())."""
    from music21 import corpus

    score = corpus.parse(path)
    satb = sorted(p.partName for p in score.parts) == sorted(CHORALE_PART_NAMES)
    if not satb:
        return False, ()
    soprano = next(p for p in score.parts if p.partName == "Soprano")
    return True, tuple(int(n.pitch.midi) for n in soprano.stripTies().flatten().notes if n.isNote)


def _is_satb(path: str) -> bool:
    return _chorale_info(path)[0]


@functools.cache
def chorale_signature(path: str) -> str | None:
    """A corpus chorale's time signature as written on its soprano ("3/4"), or None."""
    from music21 import corpus

    score = corpus.parse(path)
    soprano = next((p for p in score.parts if p.partName == "Soprano"), score.parts[0])
    sig = soprano.recurse().getElementsByClass("TimeSignature").first()
    return sig.ratioString if sig is not None else None


@dataclass(frozen=True, slots=True)
class Choice:
    """The material of one song of a plan: its source, what it is made from, and its id's tag."""

    source: str
    material: str  # mma groove ("Name" or "lib/file:Name"), music21 corpus path, or Blupi MIDI file path
    tag: str
    beats_per_bar: int = 4  # an mma groove's bar


def _blupi_files() -> list[Path]:
    files = sorted(BLUPI_DIR.glob("*.mid"))
    if not files:
        raise BuildError(
            f"no Planet Blupi MIDI files in {BLUPI_DIR} (apt-get install planetblupi-music-midi)"
        )
    return files


def _choose(
    plan: Sequence[str],
    grooves: Callable[[int], tuple[str, str]],
    blupis: Sequence[Path],
    chorales: Sequence[str],
    skip_chorale: Callable[[str], bool] = lambda _: False,
) -> list[Choice]:
    """The material of every slot of `plan`: the k-th mma slot takes grooves(k), the k-th Blupi slot the
    k-th tune (cycling), chorale slots the next SATB chorale of `chorales` that `skip_chorale` allows."""
    out: list[Choice] = []
    counters = {"mma": 0, "chorale": 0, "blupi": 0}
    chorale_next = 0
    for source in plan:
        k = counters[source]
        counters[source] += 1
        if source == "mma":
            groove, tag = grooves(k)
            out.append(Choice(source, groove, tag))
        elif source == "chorale":
            while not _is_satb(chorales[chorale_next]) or skip_chorale(chorales[chorale_next]):
                chorale_next += 1
            path = chorales[chorale_next]
            chorale_next += 1
            out.append(Choice(source, path, path.split("/")[-1].replace(".", "_")))
        else:
            path = blupis[k % len(blupis)]
            out.append(Choice(source, str(path), path.stem))
    return out


def dev_choices(seed: int, *, quick_only: bool = False) -> list[Choice]:
    """The dev split's material for `seed`: stdlib grooves, Blupi tunes and chorales, in PLAN order."""
    order = np.random.default_rng(seed)
    grooves = [GROOVES[i] for i in order.permutation(len(GROOVES))]
    blupi_files = _blupi_files()
    blupis = [blupi_files[i] for i in order.permutation(len(blupi_files))]
    chorales = chorale_paths()
    chorale_order = [chorales[i] for i in order.permutation(len(chorales))]
    plan = PLAN[:QUICK_SONGS] if quick_only else PLAN

    def groove(k: int) -> tuple[str, str]:
        g = grooves[k % len(grooves)]
        return g, g.lower()

    return _choose(plan, groove, blupis, chorale_order)


def metre_choices(seed: int, *, quick_only: bool = False) -> list[Choice]:
    """The metre material's dev songs for `seed`, in METRE_PLAN order: the mma slots take TRIPLE_GROOVES
    and LATIN_GROOVES in turn, the chorale slots SATB chorales in 3/4 that neither the held-out split
    (at HELDOUT_SEED, soprano lines included) nor the dev split at DEV_SEEDS uses. No Planet Blupi."""
    order = np.random.default_rng(seed)
    triple = [TRIPLE_GROOVES[i] for i in order.permutation(len(TRIPLE_GROOVES))]
    latin = [LATIN_GROOVES[i] for i in order.permutation(len(LATIN_GROOVES))]
    used = [c for dev_seed in DEV_SEEDS for c in dev_choices(dev_seed)] + heldout_choices(HELDOUT_SEED)
    used_chorales = {c.material for c in used if c.source == "chorale"}
    used_sopranos = {_chorale_info(c)[1] for c in used_chorales}
    chorales = [c for c in chorale_paths() if c not in used_chorales]
    chorale_order = [chorales[i] for i in order.permutation(len(chorales))]
    plan = METRE_PLAN[: len(METRE_PLAN) // 3] if quick_only else METRE_PLAN

    def skip(path: str) -> bool:
        return _chorale_info(path)[1] in used_sopranos or chorale_signature(path) != "3/4"

    out = _choose(plan, lambda k: ("", ""), [], chorale_order, skip)
    n_mma = 0
    for i, choice in enumerate(out):
        if choice.source == "mma":
            pool, beats = (triple, 3) if n_mma % 2 == 0 else (latin, 4)
            groove = pool[(n_mma // 2) % len(pool)]
            out[i] = Choice("mma", groove, groove.lower(), beats)
            n_mma += 1
    return out


def latin_choices(seed: int, *, quick_only: bool = False) -> list[Choice]:
    """The latin material's dev songs for `seed`: LATIN_GROOVES in a seed's order (LATIN_PLAN)."""
    order = np.random.default_rng(seed)
    latin = [LATIN_GROOVES[i] for i in order.permutation(len(LATIN_GROOVES))]
    plan = LATIN_PLAN[: len(LATIN_PLAN) // 3] if quick_only else LATIN_PLAN
    return [Choice("mma", latin[k % len(latin)], latin[k % len(latin)].lower()) for k in range(len(plan))]


def heldout_choices(seed: int, *, quick_only: bool = False) -> list[Choice]:
    """The held-out split's material: evaluation-only MMA libraries' grooves (the libraries taken in turn,
    every one within the first four mma songs), and Blupi tunes and chorales that the dev split does not
    use at any of DEV_SEEDS (chorales whose soprano line is a dev chorale's are left out too)."""
    order = np.random.default_rng(seed)
    libs = sorted(HELDOUT_GROOVES)
    lib_order = [libs[i] for i in order.permutation(len(libs))]
    grooves = {
        lib: [HELDOUT_GROOVES[lib][i] for i in order.permutation(len(HELDOUT_GROOVES[lib]))] for lib in libs
    }
    dev = [c for dev_seed in DEV_SEEDS for c in dev_choices(dev_seed)]
    dev_blupi = {c.material for c in dev if c.source == "blupi"}
    dev_chorales = {c.material for c in dev if c.source == "chorale"}
    dev_sopranos = {_chorale_info(c)[1] for c in dev_chorales}
    blupi_files = [f for f in _blupi_files() if str(f) not in dev_blupi]
    blupis = [blupi_files[i] for i in order.permutation(len(blupi_files))]
    chorales = [c for c in chorale_paths() if c not in dev_chorales]
    chorale_order = [chorales[i] for i in order.permutation(len(chorales))]
    plan = HELDOUT_PLAN[:QUICK_SONGS] if quick_only else HELDOUT_PLAN
    if sum(1 for s in plan if s == "blupi") > len(blupis):
        raise BuildError(f"only {len(blupis)} Planet Blupi tunes are left out of the dev split")

    def groove(k: int) -> tuple[str, str]:
        lib = lib_order[k % len(lib_order)]
        options = grooves[lib]
        spec = options[(k // len(lib_order)) % len(options)]
        return f"{lib}/{spec}", f"{lib}-{spec.split(':')[0]}".lower()

    return _choose(plan, groove, blupis, chorale_order, lambda c: _chorale_info(c)[1] in dev_sopranos)


def split_plan(split: str, material: str = "standard") -> tuple[str, ...]:
    """The sources of a split's songs, in order."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} (one of {', '.join(SPLITS)})")
    if material not in MATERIALS:
        raise ValueError(f"unknown material {material!r} (one of {', '.join(MATERIALS)})")
    if material != "standard" and split != "dev":
        raise ValueError(f"the {material} material is dev material: use it with the dev split")
    if split == "heldout":
        return HELDOUT_PLAN
    return {"metre": METRE_PLAN, "latin": LATIN_PLAN}.get(material, PLAN)


def plan_songs(
    seed: int, workdir: Path, *, quick_only: bool = False, split: str = "dev", material: str = "standard"
) -> list[Song]:
    """Make the songs of a split's plan (the first third only with `quick_only`); each has its own RNG."""
    split_plan(split, material)
    heldout = split == "heldout"
    choose = {"metre": metre_choices, "latin": latin_choices}.get(material, dev_choices)
    if heldout:
        choose = heldout_choices
    choices = choose(seed, quick_only=quick_only)
    songs: list[Song] = []
    for index, choice in enumerate(choices):
        rng = np.random.default_rng([seed, index])
        if choice.source == "mma":
            tempo = (80, 141) if heldout or material == "latin" else (84, 132)
            song = _mma_song(
                index, choice.material, rng, workdir, tempo=tempo, beats_per_bar=choice.beats_per_bar
            )
        elif choice.source == "chorale":
            song = _chorale_song(choice.material, rng)
        else:
            song = _blupi_song(Path(choice.material), rng)
        song.song_id = f"{index:02d}-{choice.source}-{choice.tag}"
        song.quick = index < QUICK_SONGS
        songs.append(song)
    return songs


# ---------------------------------------------------------------------------------------------- rendering


def render(midi_path: Path, flac_path: Path, duration: float, soundfont: Path = SOUNDFONT) -> float:
    """Render a MIDI file with FluidSynth to FLAC, exactly `duration` seconds long; return its peak level.

    FluidSynth renders in floating point; a render whose peak passes PEAK is scaled down to it, so no item
    clips when stored as 16-bit FLAC.
    """
    import soundfile as sf

    wav = flac_path.with_suffix(".wav")
    cmd = [
        "fluidsynth", "-ni", "-q", "-g", "0.5", "-r", str(SAMPLE_RATE), "-O", "float", "-F", str(wav),
        str(soundfont), str(midi_path),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not wav.exists():
        raise BuildError(
            f"fluidsynth failed on {midi_path.name}: {proc.stderr.strip() or proc.stdout.strip()}"
        )
    audio, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    wav.unlink()
    n = int(round(duration * sr))
    if len(audio) < n:
        audio = np.concatenate([audio, np.zeros((n - len(audio), audio.shape[1]), np.float32)])
    audio = audio[:n]
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > PEAK:
        audio = audio * (PEAK / peak)
    sf.write(str(flac_path), audio, sr, subtype="PCM_16", format="FLAC")
    return peak


def truth_notes(parts: Sequence[Part]) -> list[dict[str, Any]]:
    """Reference notes of the parts in the benchmark's JSON shape, sorted by start and pitch."""
    rows = []
    for p in parts:
        for n in p.notes:
            rows.append(
                {
                    "pitch": n.pitch,
                    "start": round(n.start, 6),
                    "end": round(n.end, 6),
                    "velocity": round(n.velocity / 127, 4),
                    "family": p.family.value,
                    "is_drum": p.is_drum,
                    "program": p.program,
                }
            )
    rows.sort(key=lambda r: (r["start"], r["pitch"], r["family"]))
    return rows


def midi_notes(path: Path) -> list[Part]:
    """Read back a written MIDI file's parts, so the ground truth is what FluidSynth actually played."""
    return parts_from_midi(path)


def song_stems(song: Song) -> list[tuple[str, list[Part]]]:
    """A song's items before rendering: ("mix", every part), then (family, its parts) per family present."""
    stems: list[tuple[str, list[Part]]] = [("mix", song.parts)]
    for family in song.families():
        stems.append((family.value, [p for p in song.parts if p.family is family]))
    return stems


def write_song(song: Song, song_dir: Path, soundfont: Path = SOUNDFONT) -> list[dict[str, Any]]:
    """Render a song's mix and family stems into `song_dir` with `soundfont`; return manifest entries."""
    song_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for stem, parts in song_stems(song):
        midi_path = song_dir / f"{stem}.mid"
        parts_to_midi(parts).write(str(midi_path))
        written = midi_notes(midi_path)
        flac_path = song_dir / f"{stem}.flac"
        peak = render(midi_path, flac_path, song.duration, soundfont)
        notes = truth_notes(written)
        item_id = f"{song.song_id}/{stem}"
        truth = {
            "item": item_id,
            "song": song.song_id,
            "source": song.source,
            "stem": stem,
            "duration": song.duration,
            "description": song.description,
            "instruments": [
                {"program": p.program, "is_drum": p.is_drum, "family": p.family.value, "notes": len(p.notes)}
                for p in written
            ],
            "notes": notes,
        }
        truth_path = song_dir / f"{stem}.json"
        truth_path.write_text(json.dumps(truth, indent=1), encoding="utf-8")
        entries.append(
            {
                "id": item_id,
                "song": song.song_id,
                "source": song.source,
                "stem": stem,
                "audio": f"{song.song_id}/{stem}.flac",
                "truth": f"{song.song_id}/{stem}.json",
                "duration": song.duration,
                "quick": song.quick,
                "notes": len(notes),
                "peak": round(peak, 4),
                "truth_sha256": hashlib.sha256(json.dumps(notes).encode()).hexdigest(),
            }
        )
    return entries


SOUNDFONT_PACKAGES = {SOUNDFONT: "fluid-soundfont-gm", CSOUND_SOUNDFONT: "csound-soundfont"}


def check_tools(soundfonts: Sequence[Path] = (SOUNDFONT,)) -> None:
    """Raise BuildError naming every missing tool or data package."""
    missing = []
    for tool, package in (("fluidsynth", "fluidsynth"), ("mma", "mma")):
        if shutil.which(tool) is None:
            missing.append(f"{tool} (apt-get install {package})")
    for font in soundfonts:
        if not font.exists():
            missing.append(f"{font} (apt-get install {SOUNDFONT_PACKAGES.get(font, 'a GM SoundFont')})")
    if not BLUPI_DIR.exists():
        missing.append(f"{BLUPI_DIR} (apt-get install planetblupi-music-midi)")
    try:
        import music21  # noqa: F401
    except ImportError:
        missing.append("music21 (pip install -e '.[bench]')")
    if missing:
        raise BuildError("missing: " + "; ".join(missing))


def split_folders(split: str, data_dir: Path | None = None) -> dict[str, Path]:
    """Font name -> data folder of a split: dev is one FluidR3 folder, heldout one folder per FONTS entry."""
    if split == "dev":
        return {DEV_FONT: data_dir or DATA_DIR}
    if split == "heldout":
        root = data_dir or HELDOUT_DIR
        return {font: root / font for font in FONTS}
    raise ValueError(f"unknown split {split!r} (one of {', '.join(SPLITS)})")


def default_seed(split: str) -> int:
    return HELDOUT_SEED if split == "heldout" else DEFAULT_SEED


def is_current(
    manifest_path: Path, *, split: str, seed: int | None = None, material: str = "standard"
) -> bool:
    """Whether a data folder's manifest is of this format, split and material (and seed, when given) and
    plan."""
    if not manifest_path.exists():
        return False
    old = json.loads(manifest_path.read_text(encoding="utf-8"))
    plan = split_plan(split, material)
    return (
        old.get("version") == FORMAT_VERSION
        and old.get("split", "dev") == split
        and old.get("material", "standard") == material
        and (seed is None or old.get("seed") == seed)
        and old.get("plan") == list(plan)
    )


def build(
    data_dir: Path | None = None,
    *,
    split: str = "dev",
    seed: int | None = None,
    material: str = "standard",
    force: bool = False,
    log: Any = print,
) -> list[Path]:
    """Build a split into `data_dir` unless an identical build is there; return its folders' manifests.

    dev: one folder (default bench/data), rendered with FluidR3_GM. heldout: `data_dir` (default
    bench/data-heldout) holds one folder per SoundFont of FONTS, the same songs and references in each.
    The build goes to a temporary folder beside `data_dir` and replaces it only when complete, so an
    interrupted build never leaves a half-written benchmark behind. A `material` other than "standard"
    (dev only) is recorded in the manifest.
    """
    plan = split_plan(split, material)
    seed = default_seed(split) if seed is None else seed
    folders = split_folders(split, data_dir)
    root = data_dir or (HELDOUT_DIR if split == "heldout" else DATA_DIR)
    manifests = [folder / "manifest.json" for folder in folders.values()]
    if not force and all(is_current(m, split=split, seed=seed, material=material) for m in manifests):
        log(f"{split} benchmark already built in {root} (seed {seed}); --force rebuilds it")
        return manifests
    fonts = {font: FONTS[font] for font in folders}
    check_tools(list(fonts.values()))
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=root.parent))
    try:
        with tempfile.TemporaryDirectory() as work:
            songs = plan_songs(seed, Path(work), split=split, material=material)
        for font, soundfont in fonts.items():
            folder = tmp if split == "dev" else tmp / font
            items: list[dict[str, Any]] = []
            for song in songs:
                entries = write_song(song, folder / song.song_id, soundfont)
                items.extend(entries)
                stems = ", ".join(e["stem"] for e in entries)
                log(f"{split} {font} {song.song_id}: {song.description} -> {stems}")
            manifest = {
                "version": FORMAT_VERSION,
                "split": split,
                **({} if material == "standard" else {"material": material}),
                "font": font,
                "seed": seed,
                "plan": list(plan),
                "sample_rate": SAMPLE_RATE,
                "soundfont": str(soundfont),
                "songs": [
                    {"id": s.song_id, "source": s.source, "description": s.description, "quick": s.quick}
                    for s in songs
                ],
                "items": items,
            }
            (folder / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
            n_mix = sum(1 for i in items if i["stem"] == "mix")
            log(f"built {len(items)} {split} items ({n_mix} mixes, {len(items) - n_mix} stems), {font}")
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    log(f"{split} benchmark in {root}")
    return manifests


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.build", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--split",
        choices=(*SPLITS, "all"),
        default=None,
        help="what to build (default all; dev when --data is given)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="output folder of one split (default bench/data for dev, bench/data-heldout for heldout)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help=f"random seed of one split (default {DEFAULT_SEED} for dev, {HELDOUT_SEED} for heldout)",
    )
    parser.add_argument(
        "--material",
        choices=MATERIALS,
        default="standard",
        help="what the dev split is made of: standard, metre (3/4 and Latin grooves, 3/4 chorales) or "
        "latin (Latin grooves at 80-140 BPM); give it its own --data",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if an identical build exists")
    args = parser.parse_args(argv)
    split = args.split or ("dev" if args.data is not None else "all")
    if split == "all" and (args.data is not None or args.seed is not None):
        parser.error("--data and --seed apply to one split: add --split dev or --split heldout")
    if args.material != "standard" and (split != "dev" or args.data is None):
        parser.error(
            f"--material {args.material} is dev material in its own folder: add --split dev --data DIR"
        )
    try:
        for one in SPLITS if split == "all" else (split,):
            build(args.data, split=one, seed=args.seed, material=args.material, force=args.force)
    except BuildError as exc:
        print(f"BuildError: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
