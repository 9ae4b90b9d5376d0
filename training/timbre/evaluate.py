"""Per-note family accuracy of the exported classifier on unseen-SoundFont data and the benchmark.

    python -m training.timbre.evaluate --data build/timbre-data [--weights stemscribe/weights/timbre.onnx]

Two sets, both rendered with FluidR3_GM (never used in training):
- `test.npz` from `training.timbre.data` (generated mini-mixes);
- the benchmark's mixes, `bench/data/*/mix.flac`, classifying the TRUE pitched notes of
  `mix.json`, which isolates this classifier from note decoding.
Prints accuracy, balanced accuracy, the "always piano" baseline, per-family recall and the largest
confusions; `--json` writes them too.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np

from stemscribe.audio import load_audio
from stemscribe.stems import Family
from stemscribe.transcription.timbre import SAMPLE_RATE, TIMBRE_FAMILIES, FamilyClassifier, note_features

PIANO = TIMBRE_FAMILIES.index(Family.PIANO)


def summary(pred: np.ndarray, truth: np.ndarray) -> dict:
    """Accuracy, balanced accuracy, baseline, per-family recall and the top confusions."""
    names = [f.value for f in TIMBRE_FAMILIES]
    k = len(names)
    confusion = np.bincount(truth * k + pred, minlength=k * k).reshape(k, k)
    present = [c for c in range(k) if confusion[c].sum()]
    recall = {names[c]: round(float(confusion[c, c] / confusion[c].sum()), 3) for c in present}
    off = Counter({(names[t], names[p]): int(confusion[t, p]) for t in range(k) for p in range(k) if t != p})
    return {
        "notes": int(len(truth)),
        "accuracy": round(float((pred == truth).mean()), 4),
        "balanced_accuracy": round(
            float(np.mean([confusion[c, c] / confusion[c].sum() for c in present])), 4
        ),
        "always_piano": round(float((truth == PIANO).mean()), 4),
        "recall": recall,
        "support": {names[c]: int(confusion[c].sum()) for c in present},
        "top_confusions": [f"{t}->{p}: {n}" for (t, p), n in off.most_common(8) if n],
        "confusion": confusion.tolist(),
    }


def evaluate_generated(clf: FamilyClassifier, path: Path) -> dict:
    d = np.load(path)
    pred = clf.classify_features(d["features"].astype(np.float32)).argmax(axis=1)
    return summary(pred, d["family"].astype(np.int64))


def evaluate_bench(clf: FamilyClassifier, bench: Path) -> dict:
    index = {f.value: i for i, f in enumerate(TIMBRE_FAMILIES)}
    preds, truths, per_song = [], [], {}
    for truth_path in sorted(bench.glob("*/mix.json")):
        item = json.loads(truth_path.read_text())
        notes = [n for n in item["notes"] if not n["is_drum"] and n["family"] in index]
        if not notes:
            continue
        audio = load_audio(truth_path.with_suffix(".flac"), sr=SAMPLE_RATE, mono=True)
        feats = note_features(
            audio.samples,
            np.array([n["pitch"] for n in notes]),
            np.array([n["start"] for n in notes]),
            np.array([n["end"] for n in notes]),
        )
        pred = clf.classify_features(feats).argmax(axis=1)
        truth = np.array([index[n["family"]] for n in notes])
        per_song[truth_path.parent.name] = round(float((pred == truth).mean()), 3)
        preds.append(pred)
        truths.append(truth)
    if not preds:
        raise SystemExit(f"no benchmark mixes under {bench}; run `python -m bench.build` first")
    result = summary(np.concatenate(preds), np.concatenate(truths))
    result["per_song"] = per_song
    return result


def _print(title: str, r: dict) -> None:
    print(f"== {title}: {r['notes']} notes")
    print(
        f"accuracy {r['accuracy']:.3f}  balanced {r['balanced_accuracy']:.3f}  "
        f"always-piano {r['always_piano']:.3f}"
    )
    print("recall  " + "  ".join(f"{k} {v:.2f} ({r['support'][k]})" for k, v in r["recall"].items()))
    print("confused " + "; ".join(r["top_confusions"]))
    if "per_song" in r:
        print("per song " + "  ".join(f"{k} {v:.2f}" for k, v in r["per_song"].items()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("build/timbre-data"))
    parser.add_argument("--bench", type=Path, default=Path("bench/data"))
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    clf = FamilyClassifier(args.weights)
    results = {}
    if (args.data / "test.npz").is_file():
        results["generated_fluidr3"] = evaluate_generated(clf, args.data / "test.npz")
        _print("generated mini-mixes, FluidR3_GM", results["generated_fluidr3"])
    results["bench_true_notes"] = evaluate_bench(clf, args.bench)
    _print("benchmark mixes, true notes", results["bench_true_notes"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
