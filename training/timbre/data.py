"""Synthetic mini-mixes with per-note instrument families, as timbre feature vectors.

Half of the clips hold 2-5 generated pitched parts of different families (a bass line, melodies,
chords, strums, arpeggios in each family's usual range) on random General MIDI programs, often over
a drum pattern; the other half are MMA grooves (their bass, chord and arpeggio tracks and drums, the
programs sometimes swapped within their family) with a generated melody on top. The grooves of the
benchmark's MMA songs (`BENCH_GROOVE_FILES`) are left out. All is rendered with tinysoundfont.
Every note's features (`stemscribe.transcription.timbre.note_features`) are taken from the whole mix, so the
classifier learns to hear a note's family among other instruments.

Training renders use MuseScore_General.sf3 and TimGM6mb.sf2 (with `--extra-fonts`, also the
installed `training.drums.data.EXTRA_TRAIN_SOUNDFONTS`: the OPL-3 FM bank and avldrums' kits);
FluidR3_GM.sf2 renders the test split only, and no held-out font (FluidR3 GM/GS/Mono, csound's GM
bank) is ever a training font. Training clips get random EQ, compression, reverb and noise, and their notes'
onsets are jittered as a transcriber's would be. With `--varied SHARE` that share of the training clips
renders each melodic part with the transcription network's timbre variation
(`training.transcriber.voices.VariedRenderer`: a preset detuned, layered, chorused or filtered, our own
synthesis, or an LMMS one-shot sample), so that the classifier hears more than two fonts' samples.

    python -m training.timbre.data --seed 0 --out build/timbre-data --grooves build/drums-data/grooves.json

writes `train.npz`, `valid.npz` (held-out seeds, training SoundFonts) and `test.npz` (FluidR3_GM),
each with `features` (n, N_FEATURES) float32, `family` (n,) index into TIMBRE_FAMILIES,
`program` (n,) and `clip` (n,).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from stemscribe.stems import Family, family_of_program
from stemscribe.transcription.timbre import TIMBRE_FAMILIES, note_features
from training.drums.data import (
    Renderer,
    add_noise,
    build_groove_cache,
    compress,
    random_eq,
    reverb,
    split_soundfonts,
)

log = logging.getLogger(__name__)

FAMILY_INDEX = {f: i for i, f in enumerate(TIMBRE_FAMILIES)}
# Usual MIDI ranges of each family's parts (low, high).
RANGES: dict[Family, tuple[int, int]] = {
    Family.BASS: (28, 55),
    Family.PIANO: (36, 96),
    Family.GUITAR: (40, 84),
    Family.KEYS: (40, 96),
    Family.STRINGS: (36, 96),
    Family.BRASS: (40, 82),
    Family.WINDS: (50, 96),
    Family.SYNTH: (36, 96),
    Family.VOCALS: (48, 81),
}
# Programs whose own range is far from their family's.
PROGRAM_RANGES: dict[int, tuple[int, int]] = {
    42: (36, 67),
    43: (28, 55),
    58: (28, 55),
    57: (40, 74),
    70: (34, 65),
    67: (36, 69),
    66: (44, 76),
    71: (50, 89),
    72: (74, 100),
    73: (60, 96),
    68: (58, 88),
    64: (56, 84),
    65: (49, 80),
}
# Chance that a part of this family plays a melody line rather than chords or arpeggios.
MELODY_SHARE: dict[Family, float] = {
    Family.BASS: 1.0,
    Family.PIANO: 0.3,
    Family.GUITAR: 0.25,
    Family.KEYS: 0.35,
    Family.STRINGS: 0.4,
    Family.BRASS: 0.6,
    Family.WINDS: 0.85,
    Family.SYNTH: 0.5,
    Family.VOCALS: 0.8,
}
SCALE = np.array([0, 2, 4, 5, 7, 9, 11])
DRUM_CHANNEL = 9
GROOVE_SHARE = 0.5
SCORE_SHARE = 0.35  # of the clips, when scores are given
SCORE_DRUMS_SHARE = 0.3
BENCH_GROOVE_FILES = {"dsoul.mma", "bvfunk.mma", "basicrock.mma", "ska.mma", "softrock.mma", "jazzcombo.mma"}
LEAD_FAMILIES = (Family.VOCALS, Family.WINDS, Family.BRASS, Family.SYNTH, Family.STRINGS, Family.GUITAR)

Note = tuple[float, float, int, int]  # start s, end s, pitch, velocity
LOWEST_PITCH = 21  # A0, the lowest key the transcription network has


def lower_bass(rng: np.random.Generator, notes: list[Note], share: float) -> list[Note]:
    """With chance `share`, a bass part an octave down where all of it stays at or above A0: the low
    strings of five-string and synth basses, as some libraries' grooves write their bass (MIDI 21-27),
    which the usual ranges never reach. `share` 0 draws nothing from `rng`."""
    if share <= 0.0 or not notes or rng.random() >= share:
        return notes
    if min(p for _, _, p, _ in notes) - 12 < LOWEST_PITCH:
        return notes
    return [(s, e, p - 12, v) for s, e, p, v in notes]


def _programs(family: Family, renderer: Renderer, sfid: int) -> list[int]:
    return [p for p in sorted(renderer.melodic[sfid]) if family_of_program(p) is family]


def _melody(rng: np.random.Generator, lo: int, hi: int, beat: float, seconds: float, key: int) -> list[Note]:
    notes: list[Note] = []
    scale = np.array([key + 12 * o + s for o in range(-1, 10) for s in SCALE])
    scale = scale[(scale >= lo) & (scale <= hi)]
    if len(scale) == 0:
        scale = np.arange(lo, hi + 1)
    i = int(rng.integers(len(scale)))
    t = float(rng.uniform(0, beat))
    legato = float(rng.uniform(0.6, 1.0))
    vel = int(rng.integers(60, 115))
    while t < seconds:
        length = beat * float(rng.choice([0.5, 0.5, 1, 1, 1, 1.5, 2, 3, 4]))
        if rng.random() < 0.15:
            t += length
            continue
        i = int(np.clip(i + rng.choice([-3, -2, -1, -1, 0, 1, 1, 2, 3, 5, -5]), 0, len(scale) - 1))
        v = int(np.clip(vel + rng.integers(-15, 16), 20, 127))
        notes.append((t, t + length * legato, int(scale[i]), v))
        t += length
    return notes


def _chords(
    rng: np.random.Generator, lo: int, hi: int, beat: float, seconds: float, key: int, *, style: str
) -> list[Note]:
    notes: list[Note] = []
    t = 0.0
    vel = int(rng.integers(50, 110))
    span = beat * float(rng.choice([1, 2, 2, 4]))
    while t < seconds:
        root = key + int(rng.choice(SCALE))
        tones = [root, root + int(rng.choice([3, 4])), root + 7] + ([root + 10] if rng.random() < 0.3 else [])
        base = int(rng.integers(lo, max(lo + 1, hi - 14)))
        chord = sorted({base + (p - base) % 12 for p in tones})
        chord = [p for p in chord if lo <= p <= hi] or [base]
        if style == "arpeggio":
            step = span / max(2, len(chord) * int(rng.integers(1, 3)))
            s, k = t, 0
            while s < t + span - 1e-6:
                p = chord[k % len(chord)]
                notes.append(
                    (
                        s,
                        s + step * float(rng.uniform(0.8, 3.0)),
                        p,
                        int(np.clip(vel + rng.integers(-12, 13), 20, 127)),
                    )
                )
                s += step
                k += 1
        else:
            hits = (
                [0.0]
                if style == "block"
                else list(np.arange(0.0, span - 1e-6, beat * float(rng.choice([0.5, 1.0]))))
            )
            strum = float(rng.uniform(0.008, 0.03)) if style == "strum" else 0.0
            for h in hits:
                length = (span if style == "block" else beat * 0.5) * float(rng.uniform(0.5, 1.0))
                for k, p in enumerate(chord):
                    s = t + h + k * strum
                    notes.append((s, s + length, p, int(np.clip(vel + rng.integers(-12, 13), 20, 127))))
        t += span
    return [n for n in notes if n[0] < seconds]


def _drums(rng: np.random.Generator, beat: float, seconds: float) -> list[Note]:
    notes: list[Note] = []
    step = beat / 2
    for k, t in enumerate(np.arange(0.0, seconds, step)):
        pos = k % 8
        if pos in (0, 4) or rng.random() < 0.1:
            notes.append((t, t + 0.1, 36, int(rng.integers(80, 120))))
        if pos in (2, 6):
            notes.append((t, t + 0.1, 38, int(rng.integers(80, 120))))
        notes.append((t, t + 0.1, int(rng.choice([42, 42, 42, 46, 51])), int(rng.integers(40, 90))))
    return notes


def _groove_parts(
    rng: np.random.Generator, record: dict, seconds: float
) -> tuple[list[tuple[int, list[Note]]], list[Note], float]:
    """A groove's pitched tracks (program, notes) and drums, tempo-scaled and looped over `seconds`."""
    scale = 120.0 / float(rng.uniform(70, 160))  # MMA renders at 120 BPM
    period = max(float(record["duration"]) * scale, 1.0)
    loops = int(np.ceil((seconds + 2.0) / period)) + 1
    offset = float(rng.uniform(0, max(0.0, loops * period - seconds - 2.0)))

    def place(notes: list) -> list[Note]:
        out = []
        for i in range(loops):
            for s, e, p, v in notes:
                t0, t1 = s * scale + i * period - offset, e * scale + i * period - offset
                if 0.0 <= t0 < seconds:
                    out.append((t0, t1, int(p), int(v)))
        return out

    tracks = [(int(prog), place(notes)) for prog, notes in record["tracks"] if 0 <= int(prog) < 128]
    drums = [(t, t + 0.1, k, v) for t, _, k, v in place([(d[0], d[0], d[1], d[2]) for d in record["drums"]])]
    return tracks, drums, 60.0 / 120.0 * scale


def make_clip(
    rng: np.random.Generator,
    renderer: Renderer,
    *,
    seconds: float,
    augment: bool,
    grooves: list[dict] | None = None,
    low_bass: float = 0.0,
    scores: list[dict] | None = None,
) -> tuple[npt.NDArray[np.float32], list[tuple[Note, int, int]]]:
    """Audio (n,) of one mini-mix and its labelled notes (note, family index, program); `low_bass` is
    the chance that a bass part is moved an octave down (`lower_bass`). With `scores`
    (`training.transcriber.scores.score_cache`), `SCORE_SHARE` of the clips are a window of a composed
    score, each voice on an instrument of a family that plays in its range, sometimes over drums;
    without them the clip draws exactly what it drew before scores existed."""
    beat = 60.0 / float(rng.uniform(70, 160))
    key = int(rng.integers(0, 12))
    # Parts: (family, program or None for a random one of the family, notes or None to generate).
    parts: list[tuple[Family, int | None, list[Note] | None]] = []
    drum_notes: list[Note] | None = None
    if scores and rng.random() < SCORE_SHARE:
        from training.transcriber.scores import score_voices, voice_families

        voices, beat = score_voices(rng, scores[int(rng.integers(len(scores)))], seconds)
        voices = voices[:8]
        parts = [(f, None, v) for f, v in zip(voice_families(rng, voices), voices, strict=True)]
        drum_notes = _drums(rng, beat, seconds) if rng.random() < SCORE_DRUMS_SHARE else []
    elif grooves and rng.random() < GROOVE_SHARE:
        tracks, drum_notes, beat = _groove_parts(rng, grooves[int(rng.integers(len(grooves)))], seconds)
        for program, notes in tracks:
            family = family_of_program(program)
            if family in FAMILY_INDEX and notes:
                parts.append((family, program if rng.random() < 0.5 else None, notes))
        if rng.random() < 0.85:
            parts.append((LEAD_FAMILIES[int(rng.integers(len(LEAD_FAMILIES)))], None, None))
    else:
        n_parts = int(rng.integers(2, 6))
        picks = rng.choice(len(TIMBRE_FAMILIES), size=n_parts, replace=False)
        parts = [(TIMBRE_FAMILIES[i], None, None) for i in picks]
    events: list[tuple[float, int, int, int, int]] = []
    programs: dict[int, tuple[int, int, int]] = {}
    labelled: list[tuple[Note, int, int]] = []
    volumes: dict[int, int] = {}
    for ch, (family, fixed, given) in enumerate(parts[:9]):
        sfid = renderer.fonts[int(rng.integers(len(renderer.fonts)))]
        choices = _programs(family, renderer, sfid)
        if fixed is not None and fixed in renderer.melodic[sfid]:
            program = fixed
        elif choices:
            program = int(rng.choice(choices))
        else:
            continue
        lo, hi = PROGRAM_RANGES.get(program, RANGES[family])
        if given is not None:
            notes = given
        elif rng.random() < MELODY_SHARE[family]:
            notes = _melody(rng, lo, hi, beat, seconds, key)
        else:
            notes = _chords(
                rng, lo, hi, beat, seconds, key, style=str(rng.choice(["block", "strum", "arpeggio"]))
            )
        if family is Family.BASS:
            notes = lower_bass(rng, notes, low_bass)
        programs[ch] = (sfid, 0, program)
        volumes[ch] = int(rng.integers(70, 128))
        for s, e, p, v in notes:
            events.append((s, 1, ch, p, v))
            events.append((min(e, seconds), 0, ch, p, 0))
            labelled.append(((s, e, p, v), FAMILY_INDEX[family], program))
    if drum_notes is None and rng.random() < 0.5:
        drum_notes = _drums(rng, beat, seconds)
    if drum_notes and renderer.kits:
        programs[DRUM_CHANNEL] = renderer.kits[int(rng.integers(len(renderer.kits)))]
        volumes[DRUM_CHANNEL] = int(rng.integers(60, 128))
        for s, e, p, v in drum_notes:
            events.append((s, 1, DRUM_CHANNEL, p, v))
            events.append((e, 0, DRUM_CHANNEL, p, 0))
    # Each part's level in the mix, applied through its velocities (the renderer takes note events only).
    events = [
        (t, on, ch, k, int(np.clip(round(v * volumes[ch] / 127), 1, 127)) if on else 0)
        for t, on, ch, k, v in events
    ]
    audio = renderer.render(events, seconds + 0.5, programs)
    return augment_and_level(rng, audio, augment), labelled


def augment_and_level(
    rng: np.random.Generator, audio: npt.NDArray[np.float32], augment: bool
) -> npt.NDArray[np.float32]:
    """A render with random EQ, compression, reverb and noise when `augment`, its peak set to a
    random level (0.8 when not augmenting)."""
    if augment:
        x = audio.astype(np.float64)
        if rng.random() < 0.4:
            x = random_eq(rng, x)
        if rng.random() < 0.3:
            x = compress(rng, x)
        if rng.random() < 0.4:
            x = reverb(rng, x)
        if rng.random() < 0.3:
            x = add_noise(rng, x)
        audio = x.astype(np.float32)
    peak = float(np.abs(audio).max(initial=0.0))
    if peak > 0:
        audio = audio / peak * float(rng.uniform(0.2, 0.95) if augment else 0.8)
    return audio.astype(np.float32)


_worker: dict[str, object] = {}


def _init_worker(soundfonts: tuple[Path, ...], grooves: list[dict], varied: float = 0.0) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if varied > 0:
        from training.transcriber.voices import VariedRenderer

        _worker["renderer"] = VariedRenderer(soundfonts)
    else:
        _worker["renderer"] = Renderer(soundfonts)
    _worker["grooves"] = grooves
    _worker["varied"] = varied


def _work(
    job: tuple[str, int, int],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    split, seed, index = job
    rng = np.random.default_rng([seed, {"train": 0, "valid": 1, "test": 2}[split], index])
    seconds = float(rng.uniform(6.0, 10.0))
    augment = split == "train"
    renderer = _worker["renderer"]
    grooves = _worker["grooves"]
    assert isinstance(renderer, Renderer) and isinstance(grooves, list)
    varied = float(_worker.get("varied", 0.0))  # type: ignore[arg-type]
    if varied > 0:
        # Its own stream, so that a clip's notes are the same whether or not its timbres vary.
        draw = np.random.default_rng([seed, 3, index])
        renderer.rng = draw if augment and draw.random() < varied else None  # type: ignore[attr-defined]
    audio, labelled = make_clip(rng, renderer, seconds=seconds, augment=augment, grooves=grooves)
    if not labelled:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64)
    start = np.array([n[0][0] for n in labelled])
    end = np.array([min(n[0][1], seconds) for n in labelled])
    pitch = np.array([n[0][2] for n in labelled], dtype=np.float32)
    if augment:  # a transcriber's onsets are a few frames off, and it mis-hears some octaves
        start = np.maximum(0.0, start + np.clip(rng.normal(0, 0.012, len(start)), -0.035, 0.035))
    feats = note_features(audio, pitch, start, end)
    family = np.array([n[1] for n in labelled], dtype=np.int64)
    program = np.array([n[2] for n in labelled], dtype=np.int64)
    return feats, family, program


def generate_split(
    out: Path,
    split: str,
    clips: int,
    seed: int,
    workers: int,
    grooves: list[dict] | None = None,
    *,
    extra_fonts: bool = False,
    varied: float = 0.0,
) -> None:
    t0 = time.time()
    soundfonts = split_soundfonts(split, extra_fonts=extra_fonts)
    feats, families, programs, clip_ids = [], [], [], []
    jobs = [(split, seed, i) for i in range(clips)]
    with mp.get_context("fork").Pool(
        workers, initializer=_init_worker, initargs=(soundfonts, grooves or [], varied)
    ) as pool:
        for i, (f, fam, prog) in enumerate(pool.imap(_work, jobs, chunksize=4)):
            if len(fam):
                feats.append(f)
                families.append(fam)
                programs.append(prog)
                clip_ids.append(np.full(len(fam), i, np.int64))
            if (i + 1) % 200 == 0:
                log.info("%s: %d/%d clips, %.0f s", split, i + 1, clips, time.time() - t0)
    np.savez(
        out / f"{split}.npz",
        features=np.concatenate(feats),
        family=np.concatenate(families),
        program=np.concatenate(programs),
        clip=np.concatenate(clip_ids),
    )
    log.info("%s: %d clips, %d notes in %.0f s", split, clips, sum(map(len, families)), time.time() - t0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("build/timbre-data"))
    parser.add_argument("--train-clips", type=int, default=2400)
    parser.add_argument("--valid-clips", type=int, default=150)
    parser.add_argument("--test-clips", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--splits", default="test,valid,train")
    parser.add_argument(
        "--grooves",
        type=Path,
        default=None,
        help="MMA groove cache (training.drums.data's grooves.json; built there when absent)",
    )
    parser.add_argument(
        "--extra-fonts",
        action="store_true",
        help="train and validate on the installed EXTRA_TRAIN_SOUNDFONTS too (OPL-3 FM, avldrums' kits)",
    )
    parser.add_argument(
        "--varied",
        type=float,
        default=0.0,
        help="share of the training clips rendered with varied timbres (VariedRenderer; default 0)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    counts = {"train": args.train_clips, "valid": args.valid_clips, "test": args.test_clips}
    grooves = []
    if args.grooves is not None:
        # MMA's grooves, minus the benchmark's; only the training split uses them.
        records = build_groove_cache(args.grooves)
        grooves = [r for r in records if r["file"] not in BENCH_GROOVE_FILES]
        log.info("grooves: %d of %d (benchmark grooves left out)", len(grooves), len(records))
    for split in args.splits.split(","):
        generate_split(
            args.out,
            split,
            counts[split],
            args.seed,
            args.workers,
            grooves if split == "train" else None,
            extra_fonts=args.extra_fonts,
            varied=args.varied if split == "train" else 0.0,
        )


if __name__ == "__main__":
    main()
