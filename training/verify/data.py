"""Training data for the note verifier: SoundFont stems, their decoded candidates and true labels.

A quarter of the clips are mini-mixes (training.timbre.data's), decoded as a mix. The others are
each one pitched stem of one family, as a stem file would hold it: 1-4 parts of that family
(a melody, chords, strums, arpeggios, or an MMA groove's track of that family; sections get several
voices), on random General MIDI programs of the family, rendered with tinysoundfont. The clip runs
through the real chain — basic-pitch's ONNX model, `transcription.decoding.stem_notes` with thresholds
loosened by `CANDIDATE_RELAX` (the candidates) and with the stem's own (the reference) — and every
candidate gets its features (`transcription.verify.note_features`) and a label: matched to a true note
by mir_eval (onset within 50 ms, pitch within 50 cents), as the benchmark scores. Some stems are
decoded as `other`.

Training and validation render with MuseScore_General and TimGM6mb; FluidR3_GM (the benchmark's
font) is never used here. Training clips get random EQ, compression, reverb and noise. The
benchmark's MMA grooves are left out.

    python -m training.verify.data --out build/verify-data --grooves build/drums-data/grooves.json

writes `train.npz` and `valid.npz`, each with `features` (n, N_FEATURES), `label` (n,), `role` (n,),
`clip` (n,), and per clip `clip_role`, `clip_ref` (true notes), `clip_strict` (reference notes) and
`clip_strict_tp` (of those, how many are right), which `training.verify.train` needs to compare
with the thresholds alone.
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

from stemscribe.stems import Family, StemType, family_of_program
from stemscribe.transcription.pitch_model import SAMPLE_RATE
from stemscribe.transcription.timbre import TIMBRE_FAMILIES
from stemscribe.transcription.verify import ROLES
from training.drums.data import Renderer, build_groove_cache, split_soundfonts
from training.timbre.data import (
    BENCH_GROOVE_FILES,
    MELODY_SHARE,
    PROGRAM_RANGES,
    RANGES,
    Note,
    _chords,
    _groove_parts,
    _melody,
    _programs,
    augment_and_level,
    lower_bass,
)
from training.timbre.data import make_clip as make_mix

log = logging.getLogger(__name__)

SECTIONS = {
    Family.STRINGS: 4,
    Family.BRASS: 4,
    Family.VOCALS: 4,
    Family.WINDS: 3,
    Family.SYNTH: 2,
    Family.PIANO: 2,
    Family.GUITAR: 2,
    Family.KEYS: 2,
    Family.BASS: 1,
}
OTHER_SHARE = 0.08
MIX_SHARE = 0.25  # clips that are whole mini-mixes (training.timbre.data's), decoded as a mix
GROOVE_TRACK_SHARE = 0.4
SCORE_STEM_SHARE = 0.25  # of the stems, when scores are given


def _family_grooves(grooves: list[dict]) -> dict[Family, list[int]]:
    found: dict[Family, list[int]] = {}
    for i, record in enumerate(grooves):
        for prog, _ in record["tracks"]:
            if 0 <= int(prog) < 128:
                found.setdefault(family_of_program(int(prog)), []).append(i)
    return found


def make_stem(
    rng: np.random.Generator,
    renderer: Renderer,
    *,
    seconds: float,
    augment: bool,
    grooves: list[dict],
    by_family: dict[Family, list[int]],
    low_bass: float = 0.0,
    scores: list[dict] | None = None,
) -> tuple[npt.NDArray[np.float32], list[Note], Family]:
    """Audio of one family's stem and its true notes; `low_bass` and `scores` as in
    `training.timbre.data.make_clip` (here `SCORE_STEM_SHARE` of the stems play up to four voices of a
    score that lie in the family's range, a section or consort)."""
    family = TIMBRE_FAMILIES[int(rng.integers(len(TIMBRE_FAMILIES)))]
    beat = 60.0 / float(rng.uniform(70, 160))
    key = int(rng.integers(0, 12))
    given: list[tuple[int | None, list[Note]]] = []
    if scores and rng.random() < SCORE_STEM_SHARE:
        from training.transcriber.scores import median_pitch, score_voices

        voices, beat = score_voices(rng, scores[int(rng.integers(len(scores)))], seconds)
        lo, hi = RANGES[family]
        given = [(None, v) for v in voices if lo <= median_pitch(v) <= hi][:4]
    if not given and by_family.get(family) and rng.random() < GROOVE_TRACK_SHARE:
        record = grooves[int(rng.choice(by_family[family]))]
        tracks, _, beat = _groove_parts(rng, record, seconds)
        given = [(p, n) for p, n in tracks if family_of_program(p) is family and n][:2]
    n_parts = len(given) or int(rng.integers(1, SECTIONS[family] + 1))
    lo_f, hi_f = RANGES[family]
    events: list[tuple[float, int, int, int, int]] = []
    programs: dict[int, tuple[int, int, int]] = {}
    truth: list[Note] = []
    for ch in range(n_parts):
        sfid = renderer.fonts[int(rng.integers(len(renderer.fonts)))]
        choices = _programs(family, renderer, sfid)
        fixed = given[ch][0] if given else None
        if fixed is not None and fixed in renderer.melodic[sfid] and rng.random() < 0.5:
            program = fixed
        elif choices:
            program = int(rng.choice(choices)) if ch == 0 or rng.random() < 0.3 else programs[0][2]
        else:
            continue
        lo, hi = PROGRAM_RANGES.get(program, (lo_f, hi_f))
        if given:
            notes = given[ch][1]
        elif n_parts > 1 and rng.random() < 0.7:  # voices in bands, top voice highest (a section)
            span = max(hi - lo, 12)
            top = hi - int(span * ch / (n_parts + 1))
            notes = _melody(rng, max(lo, top - 14), top, beat, seconds, key)
        elif rng.random() < MELODY_SHARE[family]:
            notes = _melody(rng, lo, hi, beat, seconds, key)
        else:
            style = str(rng.choice(["block", "strum", "arpeggio"]))
            notes = _chords(rng, lo, hi, beat, seconds, key, style=style)
        if family is Family.BASS:
            notes = lower_bass(rng, notes, low_bass)
        programs[ch] = (sfid, 0, program)
        level = float(rng.uniform(0.6, 1.0))
        for s, e, p, v in notes:
            v = int(np.clip(round(v * level), 1, 127))
            events.append((s, 1, ch, p, v))
            events.append((min(e, seconds), 0, ch, p, 0))
            truth.append((s, min(e, seconds), p, v))
    audio = (
        renderer.render(events, seconds + 0.5, programs)
        if events
        else np.zeros(int(seconds * SAMPLE_RATE), np.float32)
    )
    return augment_and_level(rng, audio, augment), truth, family


def label_candidates(
    truth: list[Note],
    starts: npt.NDArray[np.float64],
    ends: npt.NDArray[np.float64],
    pitches: npt.NDArray[np.int64],
) -> npt.NDArray[np.bool_]:
    """Which candidates mir_eval matches to a true note (onset within 50 ms, same pitch; offsets ignored)."""
    import mir_eval

    y = np.zeros(len(starts), bool)
    if not truth or not len(starts):
        return y
    ref = np.array([(s, max(e, s + 0.01)) for s, e, _, _ in truth])
    ref_hz = mir_eval.util.midi_to_hz(np.array([p for _, _, p, _ in truth], float))
    est = np.column_stack([starts, np.maximum(ends, starts + 0.01)])
    est_hz = mir_eval.util.midi_to_hz(pitches.astype(float))
    for _, j in mir_eval.transcription.match_notes(ref, ref_hz, est, est_hz, offset_ratio=None):
        y[j] = True
    return y


_worker: dict[str, object] = {}


def _init_worker(soundfonts: tuple[Path, ...], grooves: list[dict]) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from stemscribe.transcription.pitch_model import PitchModel

    _worker["renderer"] = Renderer(soundfonts)
    _worker["grooves"] = grooves
    _worker["by_family"] = _family_grooves(grooves)
    _worker["pitch"] = PitchModel(threads=1)


def _work(job: tuple[str, int, int]) -> dict[str, np.ndarray] | None:
    from stemscribe.transcription.decoding import CANDIDATE_RELAX, mix_notes, stem_decodings
    from stemscribe.transcription.notes import frame_loudness, to_events
    from stemscribe.transcription.verify import note_features

    split, seed, index = job
    rng = np.random.default_rng([seed, {"train": 0, "valid": 1}[split], index, 77])
    seconds = float(rng.uniform(6.0, 12.0))
    augment = split == "train"
    if rng.random() < MIX_SHARE:
        stem = StemType.MIX
        audio, labelled = make_mix(
            rng,
            _worker["renderer"],
            seconds=seconds,
            augment=augment,
            grooves=_worker["grooves"],  # type: ignore[arg-type]
        )
        truth = [(s, min(e, seconds), p, v) for (s, e, p, v), _, _ in labelled]
    else:
        audio, truth, family = make_stem(
            rng,
            _worker["renderer"],
            seconds=seconds,
            augment=augment,  # type: ignore[arg-type]
            grooves=_worker["grooves"],
            by_family=_worker["by_family"],  # type: ignore[arg-type]
        )
        stem = StemType.OTHER if rng.random() < OTHER_SHARE else StemType(family.value)
    if not truth:
        return None
    post = _worker["pitch"].run(audio, contour=False)  # type: ignore[attr-defined]
    loud = frame_loudness(audio, post.n_frames)
    if stem is StemType.MIX:
        candidates = mix_notes(post, loud, relax=CANDIDATE_RELAX)
        strict = mix_notes(post, loud)
    else:
        strict, candidates = stem_decodings(post, loud, stem, (1.0, CANDIDATE_RELAX))
    feats = note_features(post, loud, candidates, strict, stem.value)

    def labels(notes):  # type: ignore[no-untyped-def]
        ev = to_events(notes)
        return label_candidates(
            truth,
            np.array([max(0.0, e.start) for e in ev]),
            np.array([e.end for e in ev]),
            np.array([e.pitch for e in ev], np.int64),
        )

    strict_y = labels(strict)
    return {
        "features": feats,
        "label": labels(candidates),
        "role": ROLES.index(stem.value),
        "ref": len(truth),
        "strict": len(strict),
        "strict_tp": int(strict_y.sum()),
    }


def generate_split(out: Path, split: str, clips: int, seed: int, workers: int, grooves: list[dict]) -> None:
    t0 = time.time()
    feats, labels, roles, clip_ids = [], [], [], []
    clip_role, clip_ref, clip_strict, clip_tp = [], [], [], []
    jobs = [(split, seed, i) for i in range(clips)]
    with mp.get_context("fork").Pool(
        workers, initializer=_init_worker, initargs=(split_soundfonts(split), grooves)
    ) as pool:
        for i, r in enumerate(pool.imap(_work, jobs, chunksize=4)):
            if r is None:
                continue
            k = len(clip_role)
            n = len(r["label"])
            feats.append(r["features"])
            labels.append(r["label"])
            roles.append(np.full(n, r["role"], np.int64))
            clip_ids.append(np.full(n, k, np.int64))
            clip_role.append(r["role"])
            clip_ref.append(r["ref"])
            clip_strict.append(r["strict"])
            clip_tp.append(r["strict_tp"])
            if (i + 1) % 200 == 0:
                log.info("%s: %d/%d clips, %.0f s", split, i + 1, clips, time.time() - t0)
    np.savez(
        out / f"{split}.npz",
        features=np.concatenate(feats),
        label=np.concatenate(labels),
        role=np.concatenate(roles),
        clip=np.concatenate(clip_ids),
        clip_role=np.array(clip_role),
        clip_ref=np.array(clip_ref),
        clip_strict=np.array(clip_strict),
        clip_strict_tp=np.array(clip_tp),
    )
    log.info(
        "%s: %d clips, %d candidates in %.0f s",
        split,
        len(clip_role),
        sum(map(len, labels)),
        time.time() - t0,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("build/verify-data"))
    parser.add_argument("--train-clips", type=int, default=5000)
    parser.add_argument("--valid-clips", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--splits", default="valid,train")
    parser.add_argument(
        "--grooves",
        type=Path,
        default=Path("build/drums-data/grooves.json"),
        help="MMA groove cache (training.drums.data's grooves.json; built there when absent)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    records = build_groove_cache(args.grooves)
    grooves = [r for r in records if r["file"] not in BENCH_GROOVE_FILES]
    log.info("grooves: %d of %d (benchmark grooves left out)", len(grooves), len(records))
    counts = {"train": args.train_clips, "valid": args.valid_clips}
    for split in args.splits.split(","):
        generate_split(args.out, split, counts[split], args.seed, args.workers, grooves)


if __name__ == "__main__":
    main()
