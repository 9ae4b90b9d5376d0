"""Score drum backends side by side on the held-out test material, with speed.

    python -m training.drums.evaluate --data build/drums-data [--backends dsp model] [--weights X.onnx]

The test splits (`test_stems`, `test_mixes`) are held-out MMA grooves and generated patterns rendered
through FluidR3_GM's kits, a SoundFont never used for training; the mixes carry the same drum parts
with accompaniment at -3..+6 dB relative to the drums. Scoring: mir_eval onset matching with a
50 ms window per class of `DRUM_CLASSES` (any key folded with the class table), micro over classes.
Speed is audio seconds per second of `transcribe` wall time, in the process's current CPU conditions.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from stemscribe.transcription.drum_model import SAMPLE_RATE
from stemscribe.transcription.drums import DRUM_CLASS_NAMES, DRUM_CLASSES, DrumTranscriber, get_drum_backend
from training.drums.scoring import Counts, onsets_by_class, score_onsets
from training.drums.train import Split

log = logging.getLogger(__name__)
CONDITIONS = ("test_stems", "test_mixes")
CLASS_NAMES = DRUM_CLASS_NAMES


def build_backend(name: str, weights: Path | None, threads: int) -> DrumTranscriber:
    if name == "model":
        from stemscribe.transcription.drum_model import DrumModel

        return DrumModel(weights, threads=threads)
    return get_drum_backend(name)


def evaluate_backend(backend: DrumTranscriber, folder: Path) -> dict:
    """Counts and speed of one backend on one test split."""
    split = Split.load(folder)
    audio = np.load(folder / "audio.npy", mmap_mode="r")
    counts = Counts()
    elapsed = 0.0
    seconds = 0.0
    for i, lab in enumerate(split.clip_labels()):
        x = np.asarray(audio[i], dtype=np.float32)
        t0 = time.perf_counter()
        notes = backend.transcribe(x, SAMPLE_RATE)
        elapsed += time.perf_counter() - t0
        seconds += x.shape[0] / SAMPLE_RATE
        ref = [lab[lab[:, 2] == c, 1] for c in range(len(DRUM_CLASSES))]
        counts.add(score_onsets(ref, onsets_by_class(notes)))
    p, r, f = counts.micro()
    return {
        "precision": p,
        "recall": r,
        "f1": f,
        "per_class_f1": {CLASS_NAMES[k]: v[2] for k, v in counts.per_class().items()},
        "per_class_count": {CLASS_NAMES[k]: v[3] for k, v in counts.per_class().items()},
        "audio_seconds": seconds,
        "x_real_time": seconds / elapsed if elapsed else float("inf"),
    }


def run(data: Path, backends: list[str], weights: Path | None, threads: int) -> dict:
    results: dict = {}
    for name in backends:
        backend = build_backend(name, weights, threads)
        backend.transcribe(np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)  # warm-up
        results[name] = {cond: evaluate_backend(backend, data / cond) for cond in CONDITIONS}
    return results


def format_table(results: dict) -> str:
    lines = [f"{'backend':<8} {'condition':<11} {'F1':>6} {'P':>6} {'R':>6} {'x real time':>12}"]
    for name, by_cond in results.items():
        for cond, r in by_cond.items():
            figures = f"{r['f1']:6.3f} {r['precision']:6.3f} {r['recall']:6.3f} {r['x_real_time']:12.0f}"
            lines.append(f"{name:<8} {cond:<11} {figures}")
    lines.append("")
    conds = [(name, cond, r) for name, by_cond in results.items() for cond, r in by_cond.items()]
    lines.append(f"{'per-class F1':<18}" + "".join(f"{name + ' ' + cond:>22}" for name, cond, _ in conds))
    any_r = conds[0][2]
    for n in CLASS_NAMES.values():
        lines.append(
            f"{n:<18}"
            + "".join(f"{r['per_class_f1'][n]:22.3f}" for _, _, r in conds)
            + f"   ({any_r['per_class_count'][n]} onsets)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("build/drums-data"))
    parser.add_argument("--backends", nargs="+", default=["dsp", "model"])
    parser.add_argument(
        "--weights", type=Path, default=None, help="ONNX file for the model (default: shipped)"
    )
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: all cores)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import stemscribe.transcription.drum_model  # noqa: F401  (registers "model" when weights ship)

    results = run(args.data, args.backends, args.weights, args.threads)
    print(format_table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
