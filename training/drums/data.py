"""Synthetic drum transcription data: grooves and generated patterns rendered through SoundFont kits.

Every hit of a key in the class table (`stemscribe.transcription.drums.DRUM_CLASS_TABLE`: the kit and
the auxiliary percussion, GM keys 35..81 and the GS keys that sound like a class) is labelled with its
class; only keys of no class (GS 27..34, 84, 86, 87) play as unlabelled distractors.

Sources read here, and only these:
- MMA's `stdlib`, `pflib` and `alexis` grooves (`TRAIN_MMA_LIBS`): `mma` renders an 8-bar song per
  groove, its drum and percussion tracks plus its own bass, chord and arpeggio tracks; every 5th
  groove file is held out for validation and test. MMA's `casio`, `kara`, `yamaha` and `zoom`
  libraries are evaluation-only and never read.
- Generated patterns: kick/snare/hat or ride grooves with ghost notes, fills over the toms, flams,
  cymbal swells and alternative GM keys, with Latin, funk, pop, samba and orchestral percussion parts
  (`PERC_PATTERNS`: congas, bongos, timbales, claves, cowbell, guiro, shakers, tambourine, triangle,
  woodblocks, agogo, whistle, cuica, vibraslap, claps) at the densities they are played at, and free
  random hits of every class.

Rendering uses tinysoundfont. The training kits come from MuseScore_General.sf3 and TimGM6mb.sf2
and, with `--extra-fonts` where their Debian packages are installed, the OPL-3 FM bank and the two
acoustic kits of avldrums (Black Pearl, Red Zeppelin). With `--sample-kits`, half the training and
validation clips also play one of the recorded kits of `training.drums.samples` (Debian
`hydrogen-drumkits`: 14 kits with velocity layers; `lmms-common`: its one-shot drums as one kit; its
docstring lists them), the SoundFont kit playing the keys that kit lacks; the test split never plays
them. `HELD_OUT_SOUNDFONTS` (FluidR3 GM/GS/Mono and csound's sf_GMbank.sf2) are never used for
training or validation; FluidR3_GM renders the test split.
Training clips get accompaniment at random levels and random gain, EQ, compression, reverb, noise
and MP3 round-trips.

    python -m training.drums.data --seed 0 --out build/drums-data [--extra-fonts --sample-kits]

writes, per split, `features.npy` (all clips' log-mels, float16, concatenated), `clips.npy`
(clip offsets and lengths in frames) and `labels.npy` (clip, time s, class index, velocity 0..1);
the validation and test splits also keep their audio (`audio.npy`, float32 at 22.05 kHz) so
the evaluation can run any backend on it.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import signal

from stemscribe.transcription.drum_model import SAMPLE_RATE, log_mel
from stemscribe.transcription.drums import DRUM_CLASSES, KEY_TO_CLASS, KIT_CLASSES
from training.drums.samples import SHAKER_KEYS, SampleKit, SampleRenderer, installed_sample_kits

log = logging.getLogger(__name__)

MMA_LIB = Path("/usr/share/mma/lib/stdlib")
TRAIN_MMA_LIBS = (MMA_LIB, MMA_LIB.parent / "pflib", MMA_LIB.parent / "alexis")
TRAIN_SOUNDFONTS = (
    Path("/usr/share/sounds/sf3/MuseScore_General.sf3"),
    Path("/usr/share/sounds/sf2/TimGM6mb.sf2"),
)
# More timbres (Debian: opl3-soundfont, avldrums.lv2-soundfont), added to the
# training fonts on request where installed; the data's meta.json names the fonts a split used.
EXTRA_TRAIN_SOUNDFONTS = (
    Path("/usr/share/sounds/sf2/OPL-3_FM_128M.sf2"),
    Path("/usr/share/sounds/sf2/Black_Pearl_4_LV2.sf2"),
    Path("/usr/share/sounds/sf2/Red_Zeppelin_4_LV2.sf2"),
)
HELD_OUT_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
# Evaluation only, never read for training or validation (bench's held-out split renders with them).
HELD_OUT_SOUNDFONTS = (
    HELD_OUT_SOUNDFONT,
    Path("/usr/share/sounds/sf2/FluidR3_GS.sf2"),
    Path("/usr/share/sounds/sf3/FluidR3Mono_GM.sf3"),
    Path("/usr/share/sounds/sf2/sf_GMbank.sf2"),
)
KIT_PRESETS = range(
    0, 49
)  # bank-128 presets below 49: standard, room, power, electronic, 808, jazz, brush, orchestra
CLASS_INDEX = {pitch: i for i, pitch in enumerate(DRUM_CLASSES)}
KEY_TO_INDEX = {key: CLASS_INDEX[cls] for key, cls in KEY_TO_CLASS.items()}
DRUM_CHANNEL = 9
SYNTH_SHAKER_SHARE = 0.3  # of the clips rendered with `--sample-kits`: shakers by `synth_shaker`
SAMPLE_KIT_SHARE = 0.5  # of the clips rendered with `--sample-kits`: a recorded kit beside the font's
KIT_KEYS = frozenset(k for k, c in KEY_TO_CLASS.items() if c in KIT_CLASSES)

# Keys a generated pattern may use for each role (alternatives of one class, the scorer folds them).
KEY_CHOICES = {
    "kick": (36, 36, 36, 35),
    "snare": (38, 38, 38, 40, 37, 39),
    "closed": (42,),
    "pedal": (44,),
    "open": (46,),
    "low_tom": (45, 41, 43),
    "mid_tom": (47, 45),
    "high_tom": (50, 48),
    "crash": (49, 49, 57, 55, 52),
    "ride": (51, 51, 59, 53),
}
TOMS = ((41, 43), (45, 47), (48, 50))
# GS / GM2 keys of no class (high Q, slap, scratches, sticks, clicks, bell tree, surdos): played as
# unlabelled distractors.
UNLABELLED_PERCUSSION = (27, 28, 29, 30, 31, 32, 33, 34, 84, 86, 87)


@dataclass
class Part:
    """A piece of music in seconds: drum hits and pitched tracks."""

    drums: list[tuple[float, int, int, int]]  # (time, GM key, velocity 1..127, labelled 0/1)
    tracks: list[tuple[int, list[tuple[float, float, int, int]]]] = field(default_factory=list)
    duration: float = 0.0


# ---------------------------------------------------------------------------------------------
# MMA grooves


def groove_files(lib: Path = MMA_LIB) -> list[Path]:
    """The MMA files of one library folder that define grooves, sorted; metronomes are left out."""
    return sorted(p for p in lib.glob("*.mma") if not p.name.startswith("metronome"))


def groove_split(file_index: int) -> str:
    """Every 5th groove file is held out ("eval"); the rest train."""
    return "eval" if file_index % 5 == 4 else "train"


def groove_names(path: Path) -> list[str]:
    names = []
    for line in path.read_text(errors="replace").splitlines():
        m = re.match(r"\s*defgroove\s+(\S+)", line, re.IGNORECASE)
        if m:
            names.append(m.group(1))
    return names


CHORDS = ("C", "Am", "F", "G7", "Dm", "Em", "A7", "D7", "Fmaj7", "Cmaj7", "Bb", "E7")


def _render_groove_midi(groove: str, seed: int, workdir: Path) -> Part | None:
    """Run `mma` on an 8-bar song in `groove` at 120 BPM; None when mma fails."""
    import pretty_midi

    rng = np.random.default_rng(seed)
    bars = [str(rng.choice(CHORDS)) for _ in range(8)]
    song = workdir / "song.mma"
    midi = workdir / "song.mid"
    song.write_text(
        "Tempo 120\nGroove " + groove + "\n" + "".join(f"{i + 1} {c}\n" for i, c in enumerate(bars))
    )
    midi.unlink(missing_ok=True)
    proc = subprocess.run(
        ["mma", str(song), "-f", str(midi)], capture_output=True, text=True, timeout=60, cwd=workdir
    )
    if proc.returncode != 0 or not midi.is_file():
        return None
    try:
        pm = pretty_midi.PrettyMIDI(str(midi))
    except Exception:  # a damaged file from mma: skip the groove
        return None
    drums: list[tuple[float, int, int, int]] = []
    tracks = []
    for inst in pm.instruments:
        if inst.is_drum:
            drums.extend((float(n.start), int(n.pitch), int(n.velocity), 1) for n in inst.notes)
        elif inst.notes:
            notes = [(float(n.start), float(n.end), int(n.pitch), int(n.velocity)) for n in inst.notes]
            tracks.append((int(inst.program), notes))
    if not any(d[1] in KEY_TO_INDEX for d in drums):
        return None
    drums.sort()
    return Part(drums, tracks, float(pm.get_end_time()))


def build_groove_cache(cache: Path, libs: tuple[Path, ...] = TRAIN_MMA_LIBS) -> list[dict]:
    """Render every MMA groove of `libs` once (cached in `cache`, a JSON file) and return the records.

    Only training libraries belong here (stdlib, pflib, alexis): casio, kara, yamaha and zoom are
    evaluation-only.
    """
    if cache.is_file():
        return json.loads(cache.read_text())
    records: list[dict] = []
    seen: set[str] = set()
    files = [(fi, path) for lib in libs for fi, path in enumerate(groove_files(lib))]
    with tempfile.TemporaryDirectory() as tmp:
        for fi, path in files:
            for name in groove_names(path):
                seed = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
                part = _render_groove_midi(name, seed, Path(tmp))
                if part is None:
                    continue
                signature = hashlib.sha256(
                    repr([(round(d[0], 2), d[1]) for d in part.drums]).encode()
                ).hexdigest()
                if signature in seen:
                    continue
                seen.add(signature)
                records.append(
                    {
                        "name": name,
                        "file": path.name,
                        "lib": path.parent.name,
                        "split": groove_split(fi),
                        "duration": part.duration,
                        "drums": part.drums,
                        "tracks": part.tracks,
                    }
                )
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(records))
    return records


def part_of_record(record: dict) -> Part:
    return Part(
        [tuple(d) for d in record["drums"]],  # type: ignore[misc]
        [(int(p), [tuple(n) for n in notes]) for p, notes in record["tracks"]],  # type: ignore[misc]
        float(record["duration"]),
    )


# ---------------------------------------------------------------------------------------------
# Generated patterns


def _key(rng: np.random.Generator, role: str) -> int:
    return int(rng.choice(KEY_CHOICES[role]))


def generate_pattern(rng: np.random.Generator, *, bars: int = 8) -> Part:
    """A drum groove with variations, fills, ghost notes, flams and swells, plus accompaniment."""
    if rng.random() < 0.15:
        return generate_random_hits(rng, seconds=float(rng.uniform(8, 14)))
    tempo = float(rng.uniform(65, 190))
    beats_per_bar = 3 if rng.random() < 0.15 else 4
    steps_per_beat = 3 if rng.random() < 0.15 else 4
    steps = beats_per_bar * steps_per_beat
    step = 60.0 / tempo / steps_per_beat
    swing = float(rng.uniform(0.0, 0.33)) if steps_per_beat == 4 and rng.random() < 0.25 else 0.0
    ghost_rate = float(rng.uniform(0.05, 0.3)) if rng.random() < 0.4 else 0.0
    timekeeper = rng.choice(["closed", "closed", "open", "ride", "none"], p=[0.4, 0.15, 0.1, 0.25, 0.1])
    keeper_every = (
        int(rng.choice([1, 2, 2, steps_per_beat])) if steps_per_beat == 4 else int(rng.choice([1, 3]))
    )
    kick_key, snare_key = _key(rng, "kick"), _key(rng, "snare")
    keeper_key = {"closed": 42, "open": _key(rng, "open"), "ride": _key(rng, "ride"), "none": 0}[timekeeper]
    kick_tpl = rng.random(steps) < rng.uniform(0.05, 0.35)
    kick_tpl[0] = True
    snare_tpl = np.zeros(steps, bool)
    backbeats = [1, 3] if beats_per_bar == 4 else [1, 2]
    if rng.random() < 0.2:
        backbeats = [2] if beats_per_bar == 4 else [2]
    for b in backbeats:
        snare_tpl[b * steps_per_beat] = True
    snare_tpl |= rng.random(steps) < 0.04
    open_tpl = (
        (rng.random(steps) < rng.uniform(0.04, 0.3)) & (np.arange(steps) % steps_per_beat != 0)
        if timekeeper == "closed"
        else None
    )
    # The hi-hat foot: a pedal "chick" on the backbeats (or every beat) under a ride or open hat.
    pedal_beats = (
        (backbeats if rng.random() < 0.6 else list(range(beats_per_bar)))
        if timekeeper in ("ride", "open", "none") and rng.random() < 0.7
        else []
    )
    perc = rng.random() < 0.15  # an unlabelled key of no class
    perc_key = int(rng.choice(UNLABELLED_PERCUSSION))
    perc_tpl = rng.random(steps) < 0.35
    hits: list[tuple[float, int, int, bool]] = []  # time, key, velocity, labelled

    def at(bar: int, s: float) -> float:
        t = (bar * steps + s) * step
        if swing and int(s) % 2 == 1:
            t += swing * step
        return t

    for bar in range(bars):
        phrase_end = bar % 4 == 3
        fill_from = (
            steps - int(rng.choice([steps_per_beat, 2 * steps_per_beat, steps]))
            if phrase_end and rng.random() < 0.7
            else steps
        )
        if bar % 4 == 0 and (bar > 0 or rng.random() < 0.5):
            hits.append((at(bar, 0), _key(rng, "crash"), int(rng.integers(90, 128)), True))
        kick = kick_tpl ^ (rng.random(steps) < 0.05)
        kick[0] = True
        for s in range(steps):
            vel_scale = 1.0 if s % steps_per_beat == 0 else 0.85
            if s < fill_from:
                if kick[s]:
                    hits.append((at(bar, s), kick_key, int(rng.integers(80, 128) * vel_scale), True))
                if snare_tpl[s]:
                    hits.append((at(bar, s), snare_key, int(rng.integers(85, 128)), True))
                    if rng.random() < 0.06:  # flam: a soft grace note just before
                        hits.append(
                            (
                                at(bar, s) - rng.uniform(0.015, 0.035),
                                snare_key,
                                int(rng.integers(25, 60)),
                                False,
                            )
                        )
                elif ghost_rate and rng.random() < ghost_rate:
                    hits.append((at(bar, s), snare_key, int(rng.integers(15, 45)), True))
                if timekeeper != "none" and s % keeper_every == 0:
                    accent = 1.0 if s % steps_per_beat == 0 else float(rng.uniform(0.55, 0.9))
                    key = keeper_key
                    if open_tpl is not None and open_tpl[s]:
                        key = _key(rng, "open")
                    hits.append((at(bar, s), key, max(1, int(rng.integers(70, 120) * accent)), True))
                if s % steps_per_beat == 0 and (s // steps_per_beat) in pedal_beats and rng.random() < 0.9:
                    hits.append((at(bar, s), 44, int(rng.integers(40, 100)), True))
                if perc and perc_tpl[s]:
                    hits.append((at(bar, s), perc_key, int(rng.integers(40, 110)), False))
            else:
                _fill_step(rng, hits, at(bar, s), steps_per_beat, s - fill_from, steps - fill_from)
        if rng.random() < 0.08:  # cymbal swell into the next bar
            key = int(rng.choice([49, 51, 52, 55, 57]))
            n = int(rng.integers(6, 16))
            end = at(bar + 1, 0)
            dt = step / 2
            for i in range(n):
                hits.append((end - (n - i) * dt, key, int(20 + 90 * i / n), True))
            hits.append((end, _key(rng, "crash"), 120, True))
    hats = timekeeper in ("closed", "open")
    if rng.random() < 0.6:
        # Shakers and tambourines beside the hats, which their noise is easily taken for, and shakers
        # keeping time where no hat plays (as in many ballads), so a shaker is not heard as a hat
        # whenever the two come apart.
        include = None
        if hats and rng.random() < 0.4:
            include = str(rng.choice(["shaker", "tambourine"]))
        elif not hats and rng.random() < 0.6:
            include = str(rng.choice(["shaker", "shaker", "maracas", "cabasa", "tambourine"]))
        hits.extend(
            percussion_part(
                rng,
                bars=bars,
                beats_per_bar=beats_per_bar,
                time_of=lambda bar, beat: at(bar, beat * steps_per_beat),
                include=include,
            )
        )
    drums = []
    for t, k, v, labelled in hits:
        t = max(0.0, t + rng.normal(0, 0.004))
        v = int(np.clip(v + rng.normal(0, 6), 1, 127))
        drums.append((t, k, v, int(labelled)))
    drums.sort()
    duration = bars * steps * step + 1.0
    return Part(drums, generate_accompaniment(rng, duration, 60.0 / tempo * beats_per_bar), duration)


# Percussion parts: (style, instrument) -> patterns on a 16-step bar (two bars for the claves).
# A pattern letter names a key ('.' rests); upper case is accented, lower case normal, and the
# density of each instrument follows how it is played (shakers in 8ths or 16ths, a clave's five
# strokes in two bars, a triangle's few, a vibraslap's one per phrase).
PERC_KEYS = {
    "t": 54,  # tambourine
    "j": 83,  # jingle bell
    "c": 56,  # cowbell
    "v": 58,  # vibraslap
    "b": 60,  # high bongo
    "n": 61,  # low bongo
    "m": 62,  # mute high conga
    "h": 63,  # open high conga
    "l": 64,  # low conga
    "p": 65,  # high timbale
    "q": 66,  # low timbale
    "a": 67,  # high agogo
    "o": 68,  # low agogo
    "k": 69,  # cabasa
    "s": 70,  # maracas
    "z": 82,  # shaker
    "w": 71,  # short whistle
    "y": 72,  # long whistle
    "g": 73,  # short guiro
    "r": 74,  # long guiro
    "x": 75,  # claves
    "e": 76,  # high wood block
    "f": 77,  # low wood block
    "u": 78,  # mute cuica
    "i": 79,  # open cuica
    "d": 80,  # mute triangle
    "D": 81,  # open triangle (accented, as every upper-case letter)
    "+": 39,  # hand clap
}
PERC_PATTERNS: dict[str, dict[str, tuple[str, ...]]] = {
    "latin": {
        "clave": (
            "X..x..x.....x.x.|....x...x.......",  # son 3-2
            "....x...x.......|X..x..x.....x.x.",  # son 2-3
            "X..x...x....x.x.|....x...x.......",  # rumba 3-2
        ),
        "congas": ("m.m.M.hhm.m.M.ll", "m...M.h.m...M.ll", "l.m.h.m.l.m.hhm."),
        "bongos": ("bnbnbnbNbnbnbnbN", "b.b.b.b.b.b.b.n.", "b.n.b.bnb.n.b.bn"),
        "cowbell": ("C...c...C...c...", "C.c.C.ccc.C.c.Cc", "c...c...c...c..."),
        "guiro": ("r...g.g.r...g.g.", "r.g.r.g.r.g.r.g."),
        "maracas": ("S.s.S.s.S.s.S.s.", "SssSSssSSssSSssS"),
        "timbales": ("P.pP.pP.P.pP.P.p", "....p.......pqq.", "P..p..p...p.p..."),
        "agogo": ("A.o.Aao.A.o.Aao.", "a.a.o.o.a.a.o.o."),
        "cabasa": ("KkkkKkkkKkkkKkkk", "K.k.K.k.K.k.K.k."),
    },
    "funk": {
        "tambourine": ("....T.......T...", "T.t.T.t.T.t.T.t.", "tttTtttTtttTtttT", "....T..t....T..t"),
        "shaker": ("ZzzzZzzzZzzzZzzz", "Z.z.Z.z.Z.z.Z.z.", "zzZzzzZzzzZzzzZz"),
        "cowbell": ("C...C...C...C...", "C.c.C.c.C.c.C.c.", "C..c..c...c.c..."),
        "clap": ("....+.......+...", "+...+...+...+...", "....+.......+.+."),
        "woodblock": ("E..e..e.E..e..e.", "e.......e.e....."),
        "congas": ("m...h.h.m...l.l.", "....h.hh....l.ll"),
    },
    "pop": {
        "tambourine": ("....T.......T...", "T.t.T.t.T.t.T.t.", "jjJjjjJjjjJjjjJj"),
        "shaker": ("Z.z.Z.z.Z.z.Z.z.", "ZzzzZzzzZzzzZzzz", "S.s.S.s.S.s.S.s."),
        "clap": ("....+.......+...",),
        "triangle": ("D.......D.......", "d.d.D.d.d.d.D.d."),
        "cowbell": ("c...c...c...c...",),
    },
    "samba": {
        "whistle": ("w...w...w.w.y...", "y.......w.w.w..."),
        "cuica": ("u.i.u.i.u.iiu.i.", "i...u.i.i...u.i."),
        "agogo": ("A.a.o.A.a.o.A.o.", "a.ao.a.ao.a.o.o."),
        "tambourine": ("TtTtTtTtTtTtTtTt", "T.tTT.tTT.tTT.tT"),
        "shaker": ("ZzzzZzzzZzzzZzzz",),
    },
    "orchestral": {
        "triangle": ("D...............", "D.......D.......", "D...d...D...d...", "dddDdddDdddDdddD"),
        "tambourine": ("T...............", "T.......T.t.t.t.", "tttttttttttttttT"),
        "woodblock": ("E...F...E...F...", "e.e.f...e.e.f..."),
        "vibraslap": ("V...............",),
        "claves": ("X...x...X...x...",),
    },
}
PERC_STYLES = ("latin", "funk", "pop", "samba", "orchestral")
PERC_STYLE_P = (0.3, 0.25, 0.25, 0.08, 0.12)
SPARSE_INSTRUMENTS = {"vibraslap": 4, "whistle": 2}  # plays in one bar of this many


def percussion_part(
    rng: np.random.Generator,
    *,
    bars: int,
    beats_per_bar: int,
    time_of: Callable[[int, float], float],
    include: str | None = None,
) -> list[tuple[float, int, int, bool]]:
    """Hits (time, key, velocity, labelled) of one to four percussion instruments in one style.

    `time_of(bar, beat)` places a (fractional) beat of a bar in seconds, swing included; `include`
    names an instrument the part must have (its style drawn among those that play it).
    """
    styles = [s for s in PERC_STYLES if include is None or include in PERC_PATTERNS[s]]
    p = np.array([PERC_STYLE_P[PERC_STYLES.index(s)] for s in styles])
    style = str(rng.choice(styles, p=p / p.sum()))
    table = PERC_PATTERNS[style]
    names = list(table)
    chosen = list(rng.choice(names, size=min(len(names), int(rng.integers(1, 5))), replace=False))
    if include is not None and include not in chosen:
        chosen[0] = include
    hits: list[tuple[float, int, int, bool]] = []
    for name in chosen:
        pattern = str(rng.choice(table[str(name)])).split("|")
        level = float(rng.uniform(0.45, 1.0))
        every = SPARSE_INSTRUMENTS.get(str(name), 1)
        dropout = float(rng.uniform(0.0, 0.08))
        start_bar = int(rng.integers(0, 2))  # some parts come in late
        for bar in range(start_bar, bars):
            if every > 1 and bar % every != every - 1:
                continue
            bar_pattern = pattern[bar % len(pattern)]
            for i, ch in enumerate(bar_pattern):
                beat = i / 4.0
                if ch == "." or beat >= beats_per_bar or rng.random() < dropout:
                    continue
                key = PERC_KEYS[ch] if ch in PERC_KEYS else PERC_KEYS[ch.lower()]
                accent = ch.isupper() or ch == "+"
                base = rng.integers(90, 127) if accent else rng.integers(45, 100)
                hits.append((time_of(bar, beat), key, max(1, int(base * level)), True))
    return hits


def _fill_step(rng: np.random.Generator, hits: list, t: float, spb: int, i: int, n: int) -> None:
    """One step of a fill: toms and snare moving down, the odd kick underneath."""
    if rng.random() < 0.15:
        return
    progress = i / max(1, n - 1)
    if rng.random() < 0.25:
        key = _key(rng, "snare")
    else:
        tier = 2 - min(2, int(progress * 3 + rng.normal(0, 0.4)))
        key = int(rng.choice(TOMS[max(0, min(2, tier))]))
    hits.append((t, key, int(rng.integers(70, 128)), True))
    if rng.random() < 0.05:
        hits.append((t - rng.uniform(0.015, 0.03), key, int(rng.integers(25, 55)), False))
    if i % spb == 0 and rng.random() < 0.5:
        hits.append((t, _key(rng, "kick"), int(rng.integers(80, 127)), True))


def generate_random_hits(rng: np.random.Generator, *, seconds: float) -> Part:
    """Hits of every class at random times (some simultaneous): no groove to lean on."""
    hits: list[tuple[float, int, int, int]] = []
    for role, rate in (
        ("kick", 2.0),
        ("snare", 1.5),
        ("closed", 2.5),
        ("pedal", 0.5),
        ("open", 0.7),
        ("low_tom", 0.6),
        ("mid_tom", 0.6),
        ("high_tom", 0.6),
        ("crash", 0.4),
        ("ride", 1.0),
    ):
        n = rng.poisson(rate * seconds * rng.uniform(0.3, 1.5))
        for t in np.sort(rng.uniform(0, seconds, n)):
            hits.append((float(t), _key(rng, role), int(rng.integers(10, 128)), 1))
    # A few auxiliary instruments too, each at its own rate.
    aux = sorted(set(PERC_KEYS.values()) - set(KIT_KEYS))
    for key in rng.choice(aux, size=int(rng.integers(1, 5)), replace=False):
        n = rng.poisson(float(rng.uniform(0.3, 2.5)) * seconds)
        for t in np.sort(rng.uniform(0, seconds, n)):
            hits.append((float(t), int(key), int(rng.integers(20, 128)), 1))
    # Enforce a minimum spacing per key so hits do not merge into one.
    hits.sort()
    last: dict[int, float] = {}
    kept = []
    for t, k, v, lab in hits:
        if t - last.get(k, -1.0) >= 0.06:
            kept.append((t, k, v, lab))
            last[k] = t
    return Part(kept, generate_accompaniment(rng, seconds + 1.0, float(rng.uniform(1.5, 3.0))), seconds + 1.0)


PROGRAM_POOLS = {
    "bass": list(range(32, 40)),
    "chords": list(range(0, 8))
    + list(range(16, 22))
    + list(range(24, 32))
    + list(range(48, 52))
    + list(range(88, 96)),
    "lead": list(range(56, 80)) + list(range(80, 88)) + list(range(24, 30)) + [0, 4, 11, 40, 41],
}


def generate_accompaniment(rng: np.random.Generator, duration: float, bar: float) -> list:
    """Bass, chords and a melody in a random key: (program, notes) tracks."""
    root = int(rng.integers(0, 12))
    scale = np.array([0, 2, 4, 5, 7, 9, 11]) if rng.random() < 0.6 else np.array([0, 2, 3, 5, 7, 8, 10])
    degrees = [0, 5, 3, 4, 0, 3, 4, 4, 1, 5]
    tracks = []
    bass, chords, lead = [], [], []
    n_bars = int(np.ceil(duration / bar))
    for b in range(n_bars):
        deg = int(rng.choice(degrees))
        t0 = b * bar
        chord = [int(scale[(deg + k) % 7] + 12 * ((deg + k) // 7)) for k in (0, 2, 4)]
        bass_pitch = 36 + root + chord[0]
        pulses = int(rng.choice([2, 4, 8]))
        for k in range(pulses):
            s = t0 + k * bar / pulses
            bass.append(
                (
                    s,
                    s + bar / pulses * 0.9,
                    bass_pitch + (12 if rng.random() < 0.1 else 0),
                    int(rng.integers(70, 115)),
                )
            )
        strum = int(rng.choice([1, 2, 4]))
        for k in range(strum):
            s = t0 + k * bar / strum
            for p in chord:
                chords.append((s, s + bar / strum * 0.95, 60 + root + p, int(rng.integers(50, 100))))
        t = t0
        while t < t0 + bar:
            d = float(rng.choice([0.25, 0.5, 0.5, 1.0])) * bar / 4
            if rng.random() < 0.8:
                p = 72 + root + int(scale[int(rng.integers(0, 7))])
                lead.append((t, t + d * 0.9, p, int(rng.integers(60, 110))))
            t += d
    for pool, notes in (("bass", bass), ("chords", chords), ("lead", lead)):
        if rng.random() < 0.85:
            tracks.append((int(rng.choice(PROGRAM_POOLS[pool])), [n for n in notes if n[0] < duration]))
    return tracks


# ---------------------------------------------------------------------------------------------
# Rendering


class Renderer:
    """A tinysoundfont synth holding the SoundFonts of one split.

    `fonts` are the General MIDI fonts (melodic presets for accompaniment); `kits` are (sfid, bank,
    preset) drum kits: the bank-128 kits of GM fonts and every preset of a kit-only font (one whose
    few presets sit in bank 0, like avldrums').
    """

    def __init__(self, soundfonts: tuple[Path, ...]) -> None:
        import tinysoundfont

        self.synth = tinysoundfont.Synth(gain=-6.0, samplerate=SAMPLE_RATE)
        self.fonts: list[int] = []
        self.kits: list[tuple[int, int, int]] = []
        self.melodic: dict[int, set[int]] = {}
        self._sounding: dict[tuple[int, int, int], frozenset[int]] = {}
        self._reference: dict[tuple[int, int, int], float] = {}
        for path in soundfonts:
            sfid = self.synth.sfload(str(path), max_voices=256)
            melodic = {p for p in range(128) if self.synth.sfpreset_name(sfid, 0, p)}
            kits = [(sfid, 128, p) for p in KIT_PRESETS if self.synth.sfpreset_name(sfid, 128, p)]
            if not kits and len(melodic) < 8:  # a drum-kit font
                kits = [(sfid, 0, p) for p in sorted(melodic)]
            else:
                self.fonts.append(sfid)
                self.melodic[sfid] = melodic
            self.kits.extend(kits)

    def pick_kit(self, rng: np.random.Generator) -> tuple[int, int, int]:
        """A random kit; with several fonts, a font first (each equally likely), then one of its kits."""
        fonts = sorted({k[0] for k in self.kits})
        if len(fonts) == 1:
            return self.kits[int(rng.integers(len(self.kits)))]
        sfid = fonts[int(rng.integers(len(fonts)))]
        kits = [k for k in self.kits if k[0] == sfid]
        return kits[int(rng.integers(len(kits)))]

    def reference_peak(self, kit: tuple[int, int, int]) -> float:
        """The peak of `kit`'s kick or snare (the louder) at velocity 100: a sample kit plays at that
        level beside it."""
        self.sounding_keys(kit)
        return self._reference[kit]

    def sounding_keys(self, kit: tuple[int, int, int]) -> frozenset[int]:
        """The labelled GM keys that make a sound in `kit` (some kits leave keys empty), cached."""
        if kit not in self._sounding:
            synth = self.synth
            sfid, bank, preset = kit
            synth.sounds_off()
            synth.generate(SAMPLE_RATE // 5)
            synth.program_select(DRUM_CHANNEL, sfid, bank, preset, is_drums=True)
            keys = set()
            peaks = [0.0]
            for key in sorted(KEY_TO_INDEX):
                synth.noteon(DRUM_CHANNEL, key, 100)
                hit = np.frombuffer(synth.generate(SAMPLE_RATE // 10), np.float32)
                synth.sounds_off()
                synth.generate(SAMPLE_RATE // 10)
                if np.sqrt(np.mean(hit**2)) > 1e-4:
                    keys.add(key)
                    if key in (36, 38):
                        peaks.append(float(np.abs(hit).max()))
            self._sounding[kit] = frozenset(keys)
            self._reference[kit] = max(peaks) if max(peaks) > 0 else 0.3
        return self._sounding[kit]

    def render(
        self,
        events: list[tuple[float, int, int, int, int]],
        seconds: float,
        programs: dict[int, tuple[int, int, int]],
        *,
        tuning: dict[int, float] | None = None,
        bends: list[tuple[float, int, int]] | None = None,
    ) -> npt.NDArray[np.float32]:
        """Mono audio of note events (time, on 1/off 0, channel, key, velocity), `seconds` long.

        `programs` maps channel to (sfid, bank, preset); `tuning` channel to semitones off concert
        pitch; `bends` are pitch-wheel moves (time, channel, 0..16383; 8192 is centre, range 2
        semitones). Tuning and wheel are back at rest afterwards.
        """
        synth = self.synth
        synth.sounds_off()  # a quick release, not a cut: render it away so nothing leaks into this clip
        synth.generate(SAMPLE_RATE // 5)
        for ch in range(16):
            synth.control_change(ch, 121, 0)  # reset controllers
        for ch, (sfid, bank, preset) in programs.items():
            synth.program_select(ch, sfid, bank, preset, is_drums=bank == 128 or ch == DRUM_CHANNEL)
        moved = set(tuning or {}) | {ch for _, ch, _ in bends or ()}
        for ch in moved:
            synth.set_tuning(ch, (tuning or {}).get(ch, 0.0))
            synth.pitchbend_range(ch, 2.0)
            synth.pitchbend(ch, 8192)
        # A wheel move is an event of kind 2 (after the note events of its instant).
        timeline = [*events, *((t, 2, ch, value, 0) for t, ch, value in bends or ())]
        n = int(round(seconds * SAMPLE_RATE))
        out = np.zeros((n, 2), np.float32)
        pos = 0
        for t, kind, ch, key, vel in sorted(timeline, key=lambda e: (e[0], e[1])):
            s = min(n, max(0, int(round(t * SAMPLE_RATE))))
            if s > pos:
                out[pos:s] = np.frombuffer(synth.generate(s - pos), np.float32).reshape(-1, 2)
                pos = s
            if kind == 1:
                synth.noteon(ch, key, vel)
            elif kind == 0:
                synth.noteoff(ch, key)
            else:
                synth.pitchbend(ch, key)
        if n > pos:
            out[pos:] = np.frombuffer(synth.generate(n - pos), np.float32).reshape(-1, 2)
        synth.sounds_off()
        for ch in moved:
            synth.set_tuning(ch, 0.0)
            synth.pitchbend(ch, 8192)
        return out.mean(axis=1)


# ---------------------------------------------------------------------------------------------
# Augmentation


def _biquad(kind: str, f0: float, gain_db: float, q: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """RBJ cookbook peaking / shelving filter coefficients."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0 / sr
    cos, sin = np.cos(w0), np.sin(w0)
    alpha = sin / (2 * q)
    if kind == "peak":
        b = [1 + alpha * a, -2 * cos, 1 - alpha * a]
        den = [1 + alpha / a, -2 * cos, 1 - alpha / a]
    else:
        sq = 2 * np.sqrt(a) * alpha
        if kind == "low":
            b = [
                a * ((a + 1) - (a - 1) * cos + sq),
                2 * a * ((a - 1) - (a + 1) * cos),
                a * ((a + 1) - (a - 1) * cos - sq),
            ]
            den = [(a + 1) + (a - 1) * cos + sq, -2 * ((a - 1) + (a + 1) * cos), (a + 1) + (a - 1) * cos - sq]
        else:
            b = [
                a * ((a + 1) + (a - 1) * cos + sq),
                -2 * a * ((a - 1) + (a + 1) * cos),
                a * ((a + 1) + (a - 1) * cos - sq),
            ]
            den = [(a + 1) - (a - 1) * cos + sq, 2 * ((a - 1) - (a + 1) * cos), (a + 1) - (a - 1) * cos - sq]
    return np.array(b) / den[0], np.array(den) / den[0]


def random_eq(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    for _ in range(int(rng.integers(1, 4))):
        kind = str(rng.choice(["low", "high", "peak"]))
        f0 = float(np.exp(rng.uniform(np.log(60), np.log(9000))))
        b, a = _biquad(kind, f0, float(rng.uniform(-10, 8)), float(rng.uniform(0.5, 2.0)), SAMPLE_RATE)
        x = signal.lfilter(b, a, x)
    return x


def compress(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """Feed-forward compressor with a smoothed (attack/release) gain computed on a 1 ms grid."""
    ratio = float(rng.uniform(2, 10))
    block = SAMPLE_RATE // 1000
    n = len(x) // block * block
    if n == 0:
        return x
    level = np.sqrt(np.mean(x[:n].reshape(-1, block) ** 2, axis=1) + 1e-12)
    db = 20 * np.log10(level)
    threshold = float(np.percentile(db, 95) - rng.uniform(4, 18))
    target = np.minimum(0.0, (threshold - db) * (1 - 1 / ratio))
    attack, release = np.exp(-1 / rng.uniform(1, 10)), np.exp(-1 / rng.uniform(30, 200))
    gain = np.empty_like(target)
    g = 0.0
    for i, tg in enumerate(target):
        coef = attack if tg < g else release
        g = coef * g + (1 - coef) * tg
        gain[i] = g
    lin = np.repeat(10 ** (gain / 20), block)
    lin = np.concatenate([lin, np.full(len(x) - n, lin[-1])])
    return x * lin


def reverb(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    rt60 = float(rng.uniform(0.15, 1.6))
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    ir = signal.lfilter(*_biquad("high", 4000, float(rng.uniform(-12, 0)), 0.7, SAMPLE_RATE), ir)
    ir[: int(0.005 * SAMPLE_RATE)] = 0  # pre-delay
    wet = signal.fftconvolve(x, ir)[: len(x)]
    wet *= np.sqrt(np.mean(x**2) + 1e-12) / np.sqrt(np.mean(wet**2) + 1e-12)
    mix = float(rng.uniform(0.05, 0.45))
    return (1 - mix) * x + mix * wet


def add_noise(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    snr = float(rng.uniform(15, 50))
    noise = rng.standard_normal(len(x))
    if rng.random() < 0.5:  # pinkish
        noise = signal.lfilter([1.0], [1.0, -0.97], noise)
    rms = np.sqrt(np.mean(x**2) + 1e-12)
    return x + noise * rms / (np.sqrt(np.mean(noise**2)) + 1e-12) * 10 ** (-snr / 20)


def mp3_roundtrip(x: np.ndarray, bitrate: int) -> np.ndarray:
    """Encode to MP3 and decode again with PyAV, keeping the length and alignment."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp3") as out:
        stream = out.add_stream("libmp3lame", rate=SAMPLE_RATE, layout="mono")
        stream.bit_rate = bitrate
        pcm = np.clip(x, -1, 1).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(pcm, format="fltp", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    chunks = []
    with av.open(buf, "r") as inp:
        for frame in inp.decode(audio=0):
            chunks.append(frame.to_ndarray().reshape(-1))
    y = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    y = y[: len(x)] if len(y) >= len(x) else np.concatenate([y, np.zeros(len(x) - len(y), np.float32)])
    return y


# ---------------------------------------------------------------------------------------------
# Clips


@dataclass(frozen=True)
class ClipSpec:
    split: str  # "train", "valid", "test"
    index: int
    seed: int
    seconds: float
    accompaniment: str  # "random" (training), "none" (drum stem), "mix" (full mix)


def _clip_rng(spec: ClipSpec) -> np.random.Generator:
    return np.random.default_rng([spec.seed, {"train": 0, "valid": 1, "test": 2}[spec.split], spec.index])


def make_clip(
    spec: ClipSpec, renderer: Renderer, grooves: list[dict], samples: SampleRenderer | None = None
) -> tuple[npt.NDArray[np.float32], list[tuple[float, int, float]]]:
    """Audio (n,) and labels (time, class index, velocity 0..1) of one clip.

    With `samples`, SAMPLE_KIT_SHARE of the clips play a recorded sample kit (training splits only)
    beside the SoundFont kit, which plays the keys the sample kit lacks, and SYNTH_SHAKER_SHARE play the
    shaker keys with `synth_shaker`.
    """
    rng = _clip_rng(spec)
    use_groove = grooves and rng.random() < (0.6 if spec.split == "train" else 0.75)
    if use_groove:
        part = part_of_record(grooves[int(rng.integers(len(grooves)))])
        scale = 120.0 / float(rng.uniform(70, 180))  # MMA renders at 120 BPM
        part = Part(
            [(t * scale, k, v, lab) for t, k, v, lab in part.drums],
            [(p, [(s * scale, e * scale, q, v) for s, e, q, v in notes]) for p, notes in part.tracks],
            part.duration * scale,
        )
        if rng.random() < 0.3:  # swap keys within a class for variety
            part.drums = [
                (t, int(rng.choice(_alternatives(k))) if rng.random() < 0.5 else k, v, lab)
                for t, k, v, lab in part.drums
            ]
    else:
        part = generate_pattern(rng)
    # Loop the part to cover the clip, then pick a window with 2 s of pre-roll.
    loops = int(np.ceil((spec.seconds + 2.0) / max(part.duration, 1.0))) + 1
    period = max(part.duration, 1.0)
    drums = [(t + i * period, k, v, lab) for i in range(loops) for t, k, v, lab in part.drums]
    tracks = [
        (p, [(s + i * period, e + i * period, q, v) for i in range(loops) for s, e, q, v in notes])
        for p, notes in part.tracks
    ]
    offset = float(rng.uniform(0, max(0.0, loops * period - spec.seconds - 2.0)))
    start = offset
    pre = 2.0 if start >= 2.0 else start
    t0 = start - pre
    total = spec.seconds + pre

    kit = renderer.pick_kit(rng)
    sample_kit = samples.pick_kit(rng) if samples and rng.random() < SAMPLE_KIT_SHARE else None
    synth = SHAKER_KEYS if samples and rng.random() < SYNTH_SHAKER_SHARE else frozenset()
    sounding = renderer.sounding_keys(kit)
    if sample_kit is None and not synth:
        drum_events, labels = place_drums(drums, t0=t0, total=total, pre=pre, sounding=sounding)
        drum_audio = renderer.render(drum_events, total, {DRUM_CHANNEL: kit})
    else:
        assert samples is not None
        if sample_kit is None:  # the font's kit, with our own shaker
            sample_kit = SampleKit("synth", ())
        if sample_kit.distractors() and rng.random() < 0.3:  # the kit's own odd sounds, unlabelled
            drums = drums + distractor_hits(rng, total + t0)
        own = sample_kit.keys() | synth
        drum_events, labels = place_drums(drums, t0=t0, total=total, pre=pre, sounding=sounding | own)
        by_samples, by_font = [], []
        for e in drum_events:
            mine = e[3] in own or (e[3] not in KEY_TO_INDEX and bool(sample_kit.distractors()))
            (by_samples if mine else by_font).append(e)
        played = samples.render(sample_kit, [(e[0], e[3], e[4]) for e in by_samples], total, rng, synth)
        level = renderer.reference_peak(kit) * float(10 ** (rng.normal(0, 3) / 20))
        drum_audio = renderer.render(by_font, total, {DRUM_CHANNEL: kit}) + played * np.float32(level)

    mode = spec.accompaniment
    if mode == "random":
        mode = "mix" if rng.random() < 0.65 else ("bleed" if rng.random() < 0.4 else "none")
    audio = drum_audio
    if mode != "none" and tracks:
        acc_sfid = renderer.fonts[int(rng.integers(len(renderer.fonts)))]
        programs: dict[int, tuple[int, int, int]] = {}
        events: list[tuple[float, int, int, int, int]] = []
        channels = [c for c in range(16) if c != DRUM_CHANNEL]
        for (program, notes), ch in zip(tracks, channels, strict=False):
            available = renderer.melodic[acc_sfid]
            prog = program if program in available else min(available)
            programs[ch] = (acc_sfid, 0, prog)
            for s, e, q, v in notes:
                rs, re_ = s - t0, e - t0
                if re_ <= 0 or rs >= total:
                    continue
                events.append((max(0.0, rs), 1, ch, q, v))
                events.append((max(0.0, re_), 0, ch, q, 0))
        acc = renderer.render(events, total, programs)
        d_rms = np.sqrt(np.mean(drum_audio**2) + 1e-12)
        a_rms = np.sqrt(np.mean(acc**2) + 1e-12)
        if a_rms > 1e-5:
            if mode == "bleed":
                rel_db = float(rng.uniform(-30, -14))
            elif spec.split == "train":
                rel_db = float(rng.uniform(-12, 10))
            else:
                rel_db = float(rng.uniform(-3, 6))
            audio = drum_audio + acc * (d_rms / a_rms) * 10 ** (rel_db / 20)

    audio = audio.astype(np.float64)
    if spec.split == "train":
        if rng.random() < 0.5:
            audio = random_eq(rng, audio)
        if rng.random() < 0.35:
            audio = compress(rng, audio)
        if rng.random() < 0.35:
            audio = reverb(rng, audio)
        if rng.random() < 0.3:
            audio = add_noise(rng, audio)
    peak = np.max(np.abs(audio)) + 1e-9
    level = float(rng.uniform(0.05, 0.99)) if spec.split == "train" else float(rng.uniform(0.3, 0.9))
    audio = audio / peak * level
    if spec.split == "train" and rng.random() < 0.25:
        audio = mp3_roundtrip(audio, int(rng.choice([64000, 96000, 128000, 192000])))
    cut = int(round(pre * SAMPLE_RATE))
    audio = np.asarray(audio[cut : cut + int(round(spec.seconds * SAMPLE_RATE))], dtype=np.float32)
    return audio, merge_unisons(labels)


def distractor_hits(rng: np.random.Generator, seconds: float) -> list[tuple[float, int, int, int]]:
    """Sparse unlabelled hits (time, key, velocity, 0) of one or two keys of no class, which a sample
    kit plays with its distractor instruments."""
    hits = []
    for key in rng.choice(UNLABELLED_PERCUSSION, size=int(rng.integers(1, 3)), replace=False):
        n = rng.poisson(float(rng.uniform(0.3, 2.0)) * seconds)
        hits.extend((float(t), int(key), int(rng.integers(30, 120)), 0) for t in rng.uniform(0, seconds, n))
    return sorted(hits)


def place_drums(
    drums: list[tuple[float, int, int, int]], *, t0: float, total: float, pre: float, sounding: frozenset[int]
) -> tuple[list[tuple[float, int, int, int, int]], list[tuple[float, int, float]]]:
    """The note-on events a kit plays and the labels they earn, from a part's (time, key, velocity,
    labelled) hits: the window `t0 .. t0 + total` is rendered, labels count from `pre` seconds in.

    Every labelled hit of a key with a class is labelled with that class, at the time it is played; a
    key the kit leaves silent is played as a sounding key of its class (or dropped, when none sounds).
    Events are (time, 1, channel, key, velocity); labels (time, class index, velocity 0..1), unmerged.
    """
    events: list[tuple[float, int, int, int, int]] = []
    labels: list[tuple[float, int, float]] = []
    for t, k, v, lab in drums:
        rt = t - t0
        if rt < 0 or rt >= total:
            continue
        if k in KEY_TO_INDEX and k not in sounding:  # an empty key: play a sounding one of its class
            alternatives = [a for a in _alternatives(k) if a in sounding]
            if not alternatives:
                continue
            k = alternatives[0]
        events.append((rt, 1, DRUM_CHANNEL, k, v))  # no note-off: kits ring out as in GM players
        if lab and k in KEY_TO_INDEX and rt >= pre:
            labels.append((rt - pre, KEY_TO_INDEX[k], v / 127.0))
    return events, labels


def _alternatives(key: int) -> tuple[int, ...]:
    """The keys of `key`'s class (itself alone for a key of no class), in order."""
    cls = KEY_TO_CLASS.get(key)
    return (key,) if cls is None else CLASS_KEYS[cls]


CLASS_KEYS: dict[int, tuple[int, ...]] = {
    cls: tuple(sorted(k for k, c in KEY_TO_CLASS.items() if c == cls)) for cls in DRUM_CLASSES
}


UNISON_SECONDS = 0.025


def merge_unisons(labels: list[tuple[float, int, float]]) -> list[tuple[float, int, float]]:
    """Sorted labels with a class's hits closer than UNISON_SECONDS merged (first time, loudest
    velocity): snare and clap together, or two tracks' cabasas, are one onset of their class."""
    out: list[tuple[float, int, float]] = []
    last: dict[int, int] = {}
    for t, c, v in sorted(labels):
        j = last.get(c)
        if j is not None and t - out[j][0] < UNISON_SECONDS:
            out[j] = (out[j][0], c, max(out[j][2], v))
            continue
        last[c] = len(out)
        out.append((t, c, v))
    return out


# ---------------------------------------------------------------------------------------------
# Splits and the command


def split_soundfonts(split: str, *, extra_fonts: bool = False) -> tuple[Path, ...]:
    """The fonts a split renders with: FluidR3_GM for "test", the training fonts otherwise (with the
    installed `EXTRA_TRAIN_SOUNDFONTS` when `extra_fonts`)."""
    if split == "test":
        return (HELD_OUT_SOUNDFONT,)
    fonts = TRAIN_SOUNDFONTS + (
        tuple(p for p in EXTRA_TRAIN_SOUNDFONTS if p.is_file()) if extra_fonts else ()
    )
    if set(fonts) & set(HELD_OUT_SOUNDFONTS):
        raise ValueError(
            f"held-out SoundFonts among the training fonts: {set(fonts) & set(HELD_OUT_SOUNDFONTS)}"
        )
    return fonts


_worker: dict = {}


def _init_worker(soundfonts: tuple[Path, ...], grooves: list[dict], sample_kits: bool) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _worker["renderer"] = Renderer(soundfonts)
    _worker["grooves"] = grooves
    _worker["samples"] = SampleRenderer() if sample_kits else None


def _work(spec: ClipSpec) -> tuple[ClipSpec, np.ndarray, np.ndarray | None, list]:
    audio, labels = make_clip(spec, _worker["renderer"], _worker["grooves"], _worker["samples"])
    return spec, log_mel(audio).astype(np.float16), audio if spec.split != "train" else None, labels


def generate_split(
    out: Path,
    split: str,
    specs: list[ClipSpec],
    grooves: list[dict],
    workers: int,
    *,
    extra_fonts: bool = False,
    sample_kits: bool = False,
) -> None:
    """Render `specs` and write the split's arrays under `out / split` (the folder's name may differ).

    `sample_kits` adds the installed recorded kits (`training.drums.samples`) to a training or
    validation split; the test split never plays them. Clips are rendered in parts of PART_CLIPS,
    each saved under `out/parts/` as it completes, so an interrupted run picks up where it stopped;
    the parts are joined into the split's arrays at the end and removed."""
    soundfonts = split_soundfonts(split, extra_fonts=extra_fonts)
    sample_kits = sample_kits and split != "test"
    kit_names = [k.name for k in installed_sample_kits()] if sample_kits else []
    out.mkdir(parents=True, exist_ok=True)
    parts = render_parts(out / "parts", specs, workers, (soundfonts, grooves, sample_kits))
    feats, audios, clips, labels = [], [], [], []
    offset = 0
    for path in parts:
        with np.load(path) as part:
            base = len(clips)
            for n, mix in zip(part["frames"].tolist(), part["mix"].tolist(), strict=True):
                clips.append((offset, n, mix))
                offset += n
            feats.append(part["features"])
            lab = part["labels"].copy()
            lab[:, 0] += base
            labels.extend(lab.tolist())
            if part["audio"].size:
                audios.append(part["audio"])
    np.save(out / "features.npy", np.concatenate(feats))
    np.save(out / "clips.npy", np.array(clips, dtype=np.int64))
    np.save(out / "labels.npy", np.array(labels, dtype=np.float64).reshape(-1, 4))
    if audios:
        np.save(out / "audio.npy", np.concatenate(audios))
    (out / "meta.json").write_text(
        json.dumps(
            {
                "split": split,
                "clips": len(specs),
                "seconds": specs[0].seconds,
                "soundfonts": [str(p) for p in soundfonts],
                "sample_kits": kit_names,
            }
        )
    )
    log.info("%s: %d clips, %d labels", out.name, len(specs), len(labels))
    shutil.rmtree(out / "parts")


PART_CLIPS = 100


def render_parts(
    folder: Path, specs: list[ClipSpec], workers: int, initargs: tuple[tuple[Path, ...], list[dict], bool]
) -> list[Path]:
    """Render `specs` PART_CLIPS at a time into `folder/part-*.npz` (features float16, frames, mix,
    labels (clip within the part, time, class, velocity), audio), skipping parts already there; returns
    the parts' paths in order. A part's name holds its first clip's split, seed and index and its size."""
    folder.mkdir(parents=True, exist_ok=True)
    chunks = [specs[i : i + PART_CLIPS] for i in range(0, len(specs), PART_CLIPS)]
    paths = [
        folder / f"part-{c[0].split}-s{c[0].seed}-{c[0].index:06d}-{len(c)}-{c[0].seconds:g}s.npz"
        for c in chunks
    ]
    todo = [j for j, p in enumerate(paths) if not p.is_file()]
    if todo:
        t0 = time.time()
        done = 0
        with mp.get_context("fork").Pool(workers, initializer=_init_worker, initargs=initargs) as pool:
            for j in todo:
                mels, frames, mix, labels, audios = [], [], [], [], []
                for i, (spec, mel, audio, lab) in enumerate(pool.imap(_work, chunks[j], chunksize=4)):
                    mels.append(mel)
                    frames.append(mel.shape[0])
                    mix.append(1 if spec.accompaniment == "mix" else 0)
                    labels.extend((i, t, c, v) for t, c, v in lab)
                    if audio is not None:
                        audios.append(audio)
                tmp = paths[j].with_suffix(".tmp")
                with tmp.open("wb") as f:
                    np.savez(
                        f,
                        features=np.concatenate(mels),
                        frames=np.array(frames, np.int64),
                        mix=np.array(mix, np.int64),
                        labels=np.array(labels, np.float64).reshape(-1, 4),
                        audio=np.stack(audios) if audios else np.zeros((0,), np.float32),
                    )
                tmp.replace(paths[j])
                done += len(chunks[j])
                log.info(
                    "%s: %d/%d clips rendered, %.0f s", folder.parent.name, done, len(specs), time.time() - t0
                )
    return paths


def generate(
    out: Path,
    *,
    seed: int,
    train_clips: int,
    valid_clips: int,
    test_clips: int,
    seconds: float = 8.0,
    workers: int = 2,
    extra_fonts: bool = False,
    sample_kits: bool = False,
) -> None:
    """Write the train, valid, test_stems and test_mixes splits under `out`."""
    records = build_groove_cache(out / "grooves.json")
    train_grooves = [r for r in records if r["split"] == "train"]
    eval_grooves = [r for r in records if r["split"] == "eval"]
    log.info("grooves: %d train, %d held out", len(train_grooves), len(eval_grooves))
    jobs = [
        (
            "valid",
            "valid",
            [ClipSpec("valid", i, seed, 10.0, "none" if i % 2 == 0 else "mix") for i in range(valid_clips)],
            eval_grooves,
        ),
        (
            "test_stems",
            "test",
            [ClipSpec("test", i, seed, 10.0, "none") for i in range(test_clips)],
            eval_grooves,
        ),
        (
            "test_mixes",
            "test",
            [ClipSpec("test", i, seed, 10.0, "mix") for i in range(test_clips)],
            eval_grooves,
        ),
        (
            "train",
            "train",
            [ClipSpec("train", i, seed, seconds, "random") for i in range(train_clips)],
            train_grooves,
        ),
    ]
    for name, split, specs, grooves in jobs:
        if (out / name / "meta.json").is_file():
            log.info("%s exists, kept", name)
            continue
        generate_split(
            out / name, split, specs, grooves, workers, extra_fonts=extra_fonts, sample_kits=sample_kits
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("build/drums-data"))
    parser.add_argument("--train-clips", type=int, default=3000)
    parser.add_argument("--valid-clips", type=int, default=120)
    parser.add_argument("--test-clips", type=int, default=80)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of a training clip")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--extra-fonts",
        action="store_true",
        help="train and validate on the installed EXTRA_TRAIN_SOUNDFONTS too (OPL-3 FM, avldrums' acoustic "
        "kits); off for the shipped weights",
    )
    parser.add_argument(
        "--sample-kits",
        action="store_true",
        help="train and validate on the installed recorded kits too (Debian hydrogen-drumkits, lmms-common; "
        "training.drums.samples), each beside a SoundFont kit",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    generate(
        args.out,
        seed=args.seed,
        train_clips=args.train_clips,
        valid_clips=args.valid_clips,
        test_clips=args.test_clips,
        seconds=args.seconds,
        workers=args.workers,
        extra_fonts=args.extra_fonts,
        sample_kits=args.sample_kits,
    )


if __name__ == "__main__":
    main()
