"""Shards of clips for the transcription network: audio, basic-pitch's posteriors and exact notes per family.

Each clip is one of
- a mini-mix (`training.timbre.data.make_clip`): 2-5 generated parts of different families (melodies,
  chords, strums, arpeggios) or an MMA groove's own tracks with a generated lead, often over drums;
- a dense mix: two mini-mixes summed (4-9 parts);
- a stem (`training.verify.data.make_stem`): 1-4 parts of one family (sections, voices in bands);
all rendered with tinysoundfont at 22.05 kHz, with random EQ, compression, reverb, noise and level, and
sometimes an MP3 round trip. From shard `VARIED_FROM_SHARD` on, every melodic part also gets a timbre
of its own (`training.transcriber.voices.VariedRenderer`: treated SoundFont presets, our own
synthesis, LMMS's recorded one-shot samples); the first shards and `valid.npz` keep the SoundFonts'
presets as they are, as the first runs of the network were trained and validated on. From shard
`LOW_BASS_FROM_SHARD` on, a bass part goes an octave down with chance `LOW_BASS_SHARE` where it stays
at or above A0 (`training.timbre.data.lower_bass`): held-out grooves put their bass at MIDI 21-27, which
the generators' ranges never reached (shards 16-39 written before commit 30db24b had none). From shard
`EXTRA_FROM_SHARD` on, piano parts may also be the recorded Salamander grand and guitar and bass parts
Karplus-Strong plucked strings (`voices.VariedRenderer.extra_share`; the piano needs `make
training-samples`, and without it those parts keep the other timbres). In shards `PHYSICAL_SHARDS`
(76-99), keys, piano, bass, brass and synth parts may also be model-based voices
(`training.transcriber.physical`: struck bars, drawbar organs, free reeds, a stiff-string piano,
two-operator FM; a tried cycle on them was not kept, so later shards leave them out). From shard
`SCORES_FROM_SHARD` (100) on, some mixes and stems are windows of composed scores
(`training.transcriber.scores`: music21's corpus without Bach), each voice on an instrument.

Sources read here, and only these: MMA's `stdlib`, `pflib` and `alexis` grooves (minus the development
benchmark's groove files), generated parts, and music21's corpus minus every Bach work
(`scores.is_training_score`); SoundFonts MuseScore_General, TimGM6mb and the OPL-3 FM
bank (`TRAIN_FONTS`); LMMS's instrument samples (`voices.LMMS_SAMPLES`); the Salamander Grand Piano
(`voices.SALAMANDER_DIR`). Evaluation-only material is
never read: FluidR3 (GM, GS, Mono), csound's GM bank, the casio/kara/yamaha/zoom MMA libraries,
Planet Blupi, Bach's chorales.

    python -m training.transcriber.data --out build/transcriber-data --shards 0-11 --workers 1

writes `shard-00000.npz` ... (`SHARD_CLIPS` clips each) and `valid.npz`; every shard is a pure function
of (`--seed`, its index), so a run can be extended or regenerated shard by shard.
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

from stemscribe.stems import Family
from stemscribe.transcription.timbre import TIMBRE_FAMILIES
from training.drums.data import (
    HELD_OUT_SOUNDFONTS,
    TRAIN_MMA_LIBS,
    Renderer,
    build_groove_cache,
    mp3_roundtrip,
)
from training.timbre.data import BENCH_GROOVE_FILES, FAMILY_INDEX
from training.timbre.data import make_clip as make_mix
from training.transcriber.scores import score_cache
from training.transcriber.voices import VariedRenderer
from training.verify.data import _family_grooves, make_stem

log = logging.getLogger(__name__)

TRAIN_FONTS = (
    Path("/usr/share/sounds/sf3/MuseScore_General.sf3"),
    Path("/usr/share/sounds/sf2/TimGM6mb.sf2"),
    Path("/usr/share/sounds/sf2/OPL-3_FM_128M.sf2"),
)
HELD_OUT_FONT_NAMES = tuple(p.name for p in HELD_OUT_SOUNDFONTS)
SHARD_CLIPS = 200
VALID_CLIPS = 120
MIX_SHARE = 0.45
DENSE_SHARE = 0.15  # the rest are stems
MP3_SHARE = 0.12
KINDS = ("mix", "dense", "stem")
VARIED_FROM_SHARD = 4
LOW_BASS_FROM_SHARD = 16
LOW_BASS_SHARE = 0.4
EXTRA_FROM_SHARD = 40  # from here on the recorded grand and plucked strings (`VariedRenderer.extra_share`)
EXTRA_SHARE = 1.0
PHYSICAL_SHARDS = range(76, 100)  # the model-based voices (`VariedRenderer.physical_share`), not kept
PHYSICAL_SHARE = 1.0
SCORES_FROM_SHARD = 100  # from here on windows of composed scores (`training.transcriber.scores`)
VALID_SHARD = 10**6


def train_fonts() -> tuple[Path, ...]:
    """The installed training fonts (or `$STEMSCRIBE_TRAIN_FONTS`, ':'-joined); never a held-out one."""
    override = os.environ.get("STEMSCRIBE_TRAIN_FONTS")
    candidates = tuple(Path(p) for p in override.split(os.pathsep)) if override else TRAIN_FONTS
    fonts = tuple(p for p in candidates if p.is_file())
    held_out = [p for p in fonts if p.resolve().name in HELD_OUT_FONT_NAMES or p.name in HELD_OUT_FONT_NAMES]
    if held_out:
        raise ValueError(f"held-out SoundFonts may not be trained on: {held_out}")
    if not fonts:
        raise FileNotFoundError(f"none of the training SoundFonts is installed: {TRAIN_FONTS}")
    return fonts


Labelled = list[tuple[float, float, int, int, int]]  # start s, end s, MIDI pitch, velocity, family index


def make_clip(
    rng: np.random.Generator,
    renderer: Renderer,
    grooves: list[dict],
    by_family: dict[Family, list[int]],
    low_bass: float = 0.0,
    scores: list[dict] | None = None,
) -> tuple[npt.NDArray[np.float32], Labelled, int]:
    """Audio (n,) at 22.05 kHz, its notes with family indices, and the kind index (see KINDS);
    `low_bass` and `scores` as in `training.timbre.data.make_clip`."""
    seconds = float(rng.uniform(6.0, 10.0))
    draw = rng.random()
    if draw < MIX_SHARE + DENSE_SHARE:
        audio, labelled = make_mix(
            rng, renderer, seconds=seconds, augment=True, grooves=grooves, low_bass=low_bass, scores=scores
        )
        notes = [(s, min(e, seconds), p, v, fam) for (s, e, p, v), fam, _ in labelled]
        kind = 0
        if draw >= MIX_SHARE:
            other, more = make_mix(
                rng,
                renderer,
                seconds=seconds,
                augment=True,
                grooves=grooves,
                low_bass=low_bass,
                scores=scores,
            )
            n = min(len(audio), len(other))
            gain = float(rng.uniform(0.4, 1.0))
            audio = audio[:n] + gain * other[:n]
            audio = audio / max(float(np.abs(audio).max(initial=0.0)), 1e-6) * float(rng.uniform(0.2, 0.95))
            notes += [(s, min(e, seconds), p, v, fam) for (s, e, p, v), fam, _ in more]
            kind = 1
    else:
        audio, truth, family = make_stem(
            rng,
            renderer,
            seconds=seconds,
            augment=True,
            grooves=grooves,
            by_family=by_family,
            low_bass=low_bass,
            scores=scores,
        )
        notes = [(s, e, p, v, FAMILY_INDEX[family]) for s, e, p, v in truth]
        kind = 2
    if rng.random() < MP3_SHARE:
        audio = mp3_roundtrip(audio.astype(np.float64), int(rng.choice([64000, 96000, 128000, 192000])))
    return audio.astype(np.float32), notes, kind


_worker: dict[str, object] = {}


def _init_worker(grooves: list[dict], scores: list[dict]) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from stemscribe.transcription.pitch_model import PitchModel

    _worker["renderer"] = VariedRenderer(train_fonts())
    _worker["grooves"] = grooves
    _worker["scores"] = scores
    _worker["by_family"] = _family_grooves(grooves)
    _worker["pitch"] = PitchModel(threads=1)


def _work(job: tuple[int, int, int]) -> dict[str, np.ndarray]:
    seed, shard, index = job
    rng = np.random.default_rng([seed, shard, index, 15])
    renderer, grooves, by_family = _worker["renderer"], _worker["grooves"], _worker["by_family"]
    assert isinstance(renderer, VariedRenderer)
    varied = VARIED_FROM_SHARD <= shard < VALID_SHARD
    renderer.rng = np.random.default_rng([seed, shard, index, 16]) if varied else None
    renderer.extra_share = EXTRA_SHARE if EXTRA_FROM_SHARD <= shard < VALID_SHARD else 0.0
    renderer.physical_share = PHYSICAL_SHARE if shard in PHYSICAL_SHARDS else 0.0
    low_bass = LOW_BASS_SHARE if LOW_BASS_FROM_SHARD <= shard < VALID_SHARD else 0.0
    scores = _worker["scores"] if SCORES_FROM_SHARD <= shard < VALID_SHARD else None
    audio, notes, kind = make_clip(rng, renderer, grooves, by_family, low_bass, scores)  # type: ignore[arg-type]
    post = _worker["pitch"].run(audio, contour=False)  # type: ignore[attr-defined]
    return {
        "audio": np.round(np.clip(audio, -1, 1) * 32767).astype(np.int16),
        "note": np.round(post.note * 255).astype(np.uint8),
        "onset": np.round(post.onset * 255).astype(np.uint8),
        "notes": np.array(notes, np.float32).reshape(-1, 5),
        "kind": np.int64(kind),
    }


def pack(clips: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One shard's arrays: each field concatenated, with per-clip offsets (n_clips + 1,)."""
    out: dict[str, np.ndarray] = {"kind": np.array([c["kind"] for c in clips], np.int64)}
    for key in ("audio", "note", "onset", "notes"):
        parts = [c[key] for c in clips]
        out[key] = np.concatenate(parts)
        out[f"{key}_offsets"] = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
    return out


def load_shard(path: Path) -> list[dict[str, np.ndarray]]:
    """The clips of a shard written by `pack` (posteriors back to float32 0..1)."""
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    clips = []
    for i in range(len(data["kind"])):
        clip = {}
        for key in ("audio", "note", "onset", "notes"):
            a, b = data[f"{key}_offsets"][i : i + 2]
            clip[key] = data[key][a:b]
        clip["kind"] = data["kind"][i]
        clips.append(clip)
    return clips


def training_grooves(cache: Path) -> list[dict]:
    records = build_groove_cache(cache, TRAIN_MMA_LIBS)
    return [r for r in records if r["file"] not in BENCH_GROOVE_FILES]


def write_shard(path: Path, seed: int, shard: int, clips: int, pool: mp.pool.Pool) -> None:
    t0 = time.time()
    done = pool.map(_work, [(seed, shard, i) for i in range(clips)], chunksize=2)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **pack(done))
    tmp.rename(path)  # a shard appears whole or not at all: a trainer may be waiting for it
    seconds = sum(len(c["audio"]) for c in done) / 22050
    log.info("%s: %d clips, %.0f s of audio in %.0f s", path.name, clips, seconds, time.time() - t0)


def _shard_range(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("build/transcriber-data"))
    parser.add_argument("--shards", default="0-9", help="shard indices, e.g. 0-19")
    parser.add_argument("--clips", type=int, default=SHARD_CLIPS)
    parser.add_argument("--valid", action="store_true", help="also write valid.npz (shard VALID_SHARD)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--grooves", type=Path, default=Path("build/transcriber-data/grooves.json"))
    parser.add_argument("--scores", type=Path, default=Path("build/transcriber-data/scores.json.gz"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    grooves = training_grooves(args.grooves)
    shards = _shard_range(args.shards)
    scores = score_cache(args.scores) if max(shards) >= SCORES_FROM_SHARD else []
    log.info(
        "%d grooves, fonts %s, families %s",
        len(grooves),
        [p.name for p in train_fonts()],
        [f.value for f in TIMBRE_FAMILIES],
    )
    with mp.get_context("fork").Pool(
        args.workers, initializer=_init_worker, initargs=(grooves, scores)
    ) as pool:
        if args.valid and not (args.out / "valid.npz").is_file():
            write_shard(args.out / "valid.npz", args.seed, VALID_SHARD, VALID_CLIPS, pool)
        for shard in shards:
            path = args.out / f"shard-{shard:05d}.npz"
            if not path.is_file():
                write_shard(path, args.seed, shard, args.clips, pool)


if __name__ == "__main__":
    main()
