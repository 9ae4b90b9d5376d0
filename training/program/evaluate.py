"""How often the program classifier names an instrument's GM program, against each family's default.

    python -m training.program.evaluate --data build/program-data [--weights build/program.onnx]

Two kinds of figures, vocals left out (a vocal line is always written "Synth Voice"):
- per note and per part, `valid.npz` (training SoundFonts, held-out seeds) and `test.npz`
  (FluidR3_GM) of `training.timbre.data`: the argmax over the note's true family's programs, and a
  part's (clip, program) mean probability as the pipeline takes it;
- per written instrument, the benchmark's mixes (dev `bench/data`, held-out
  `bench/data-heldout/fluidr3` and `/csound`): each mix is transcribed once with the program model
  off (`Transcriber(programs=False)`, cached under `--cache`), then every pitched instrument is
  named with `ProgramClassifier.pick`, as the pipeline names it, and compared with the reference
  part of its family that shares most onset-matched notes (same pitch, onsets within 50 ms);
  instruments that share no note with a part of their family are counted apart.
Exact-program and same-8-program-group accuracy, model and family default (`FAMILY_PROGRAM`) side by
side; `--json` writes them with every instrument's verdict.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from bench.dataset import load_items
from stemscribe.audio import load_audio
from stemscribe.result import NoteEvent
from stemscribe.stems import FAMILY_PROGRAM, Family
from stemscribe.transcription.programs import ProgramClassifier, family_programs
from stemscribe.transcription.timbre import SAMPLE_RATE, TIMBRE_FAMILIES

ONSET_TOLERANCE = 0.05
SPLITS = {
    "dev": Path("bench/data"),
    "fluidr3": Path("bench/data-heldout/fluidr3"),
    "csound": Path("bench/data-heldout/csound"),
}
SKIPPED = (Family.VOCALS, Family.DRUMS)


def _rates(model: list[int], default: list[int], truth: list[int]) -> dict:
    m, d, t = np.array(model), np.array(default), np.array(truth)
    n = len(t)
    return {
        "n": n,
        "exact_model": round(float((m == t).mean()), 4) if n else None,
        "exact_default": round(float((d == t).mean()), 4) if n else None,
        "group_model": round(float((m // 8 == t // 8).mean()), 4) if n else None,
        "group_default": round(float((d // 8 == t // 8).mean()), 4) if n else None,
    }


def evaluate_notes(clf: ProgramClassifier, path: Path) -> dict:
    """Per-note and per-part figures of one generated split."""
    d = np.load(path)
    feats, fam, prog, clip = d["features"].astype(np.float32), d["family"], d["program"], d["clip"]
    logits = clf.logits(feats)
    out: dict = {}
    notes: tuple[list[int], list[int], list[int]] = ([], [], [])
    parts: tuple[list[int], list[int], list[int]] = ([], [], [])
    for k, family in enumerate(TIMBRE_FAMILIES):
        if family in SKIPPED:
            continue
        sel = fam == k
        if not sel.any():
            continue
        progs = np.array(family_programs(family))
        z = logits[sel][:, progs].astype(np.float64)
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        notes[0].extend(progs[p.argmax(axis=1)].tolist())
        notes[1].extend([FAMILY_PROGRAM[family]] * int(sel.sum()))
        notes[2].extend(prog[sel].tolist())
        keys = clip[sel] * 1000 + prog[sel]
        for key in np.unique(keys):
            parts[0].append(int(progs[p[keys == key].mean(axis=0).argmax()]))
            parts[1].append(FAMILY_PROGRAM[family])
            parts[2].append(int(key % 1000))
    out["notes"] = _rates(*notes)
    out["parts"] = _rates(*parts)
    return out


def _transcribed(audio: Path, cache: Path, engine: str) -> list[dict]:
    """The pitched instruments a mix is written with (program model off), cached as JSON."""
    if cache.is_file():
        return json.loads(cache.read_text())
    from stemscribe.transcription.pipeline import Transcriber

    result = Transcriber(engine=engine, programs=False, threads=1).transcribe(audio, stem="mix")
    insts = [
        {"family": i.family.value, "notes": [[n.pitch, n.start, n.end, n.velocity] for n in i.notes]}
        for i in result.instruments
        if not i.is_drum
    ]
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(insts))
    return insts


def _shared(notes: list[list[float]], ref: list[tuple[int, float]]) -> int:
    by_pitch: dict[int, list[float]] = defaultdict(list)
    for p, s in ref:
        by_pitch[p].append(s)
    return sum(any(abs(s - n[1]) <= ONSET_TOLERANCE for s in by_pitch.get(int(n[0]), ())) for n in notes)


def evaluate_mixes(clf: ProgramClassifier, data: Path, cache: Path, engine: str) -> dict:
    """Per-instrument figures of one benchmark split's mixes."""
    verdicts, unmatched = [], 0
    for item in (i for i in load_items(data) if i.is_mix):
        truth = json.loads(item.truth.read_text())
        samples = load_audio(item.audio, sr=SAMPLE_RATE, mono=True).samples
        for inst in _transcribed(item.audio, cache / engine / data.name / f"{item.song}.json", engine):
            family = Family(inst["family"])
            if family in SKIPPED or not inst["notes"]:
                continue
            parts: dict[int, list[tuple[int, float]]] = defaultdict(list)
            for n in truth["notes"]:
                if not n["is_drum"] and n["family"] == family.value:
                    parts[int(n["program"])].append((int(n["pitch"]), float(n["start"])))
            shared = {prog: _shared(inst["notes"], ref) for prog, ref in parts.items()}
            if not shared or max(shared.values()) == 0:
                unmatched += 1
                continue
            ref_program = max(shared, key=lambda p: (shared[p], -p))
            events = [NoteEvent(int(p), float(s), float(e), float(v)) for p, s, e, v in inst["notes"]]
            verdicts.append(
                {
                    "song": item.song,
                    "family": family.value,
                    "notes": len(events),
                    "reference": ref_program,
                    "model": clf.pick(samples, family, events),
                    "default": FAMILY_PROGRAM[family],
                }
            )
    out = _rates(
        [v["model"] for v in verdicts], [v["default"] for v in verdicts], [v["reference"] for v in verdicts]
    )
    out["unmatched"] = unmatched
    out["instruments"] = verdicts
    return out


def _line(name: str, r: dict) -> str:
    return (
        f"{name:<28} {r['n']:>6}  exact {r['exact_model']:.3f} vs {r['exact_default']:.3f}  "
        f"group {r['group_model']:.3f} vs {r['group_default']:.3f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("build/program-data"))
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--cache", type=Path, default=Path("build/program-eval"))
    parser.add_argument("--splits", default="dev,fluidr3,csound")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    clf = ProgramClassifier(args.weights, threads=1)
    results: dict = {}
    print(f"{'set':<28} {'n':>6}  model vs family default")
    for split in ("valid", "test"):
        if (args.data / f"{split}.npz").is_file():
            results[split] = evaluate_notes(clf, args.data / f"{split}.npz")
            print(_line(f"{split} notes", results[split]["notes"]))
            print(_line(f"{split} parts", results[split]["parts"]))
    for split in args.splits.split(","):
        if split:
            results[split] = evaluate_mixes(clf, SPLITS[split], args.cache, args.engine)
            r = results[split]
            print(_line(f"{split} mixes, instruments", r) + f"  ({r['unmatched']} unmatched)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
