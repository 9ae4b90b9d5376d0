"""Export a trained transcription network to ONNX (opset 17) with its thresholds, and write its sha256.

    python -m training.transcriber.export --checkpoint build/transcriber/best.pt \
        --data build/transcriber-data --out stemscribe/weights/transcriber.onnx

Per-family (onset, frame) thresholds are tuned on the validation file (training fonts, held-out
seeds) and travel in the metadata with the families, the feature version and the training step;
`NetworkTranscriber` checks them on load. The export is compared with torch before anything is written.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch

from stemscribe.transcription.network import FEATURE_VERSION, N_CHANNELS
from stemscribe.transcription.timbre import TIMBRE_FAMILIES
from training.onnx_export import export_checked
from training.transcriber.data import load_shard
from training.transcriber.model import Exported, NoteNet
from training.transcriber.train import evaluate, prepare, tune_thresholds

log = logging.getLogger(__name__)


def export_net(net: NoteNet, out: Path, thresholds: np.ndarray, info: dict[str, str]) -> str:
    """Write `out` and its sha256 for `net` with `thresholds` (10, 2: the families', then "pitch");
    returns the sha256."""
    meta = {
        "families": json.dumps([f.value for f in TIMBRE_FAMILIES]),
        "feature_version": str(FEATURE_VERSION),
        "n_channels": str(N_CHANNELS),
        "width": str(net.width),
        "thresholds": json.dumps(
            {
                name: [float(a), float(b)]
                for name, (a, b) in zip(
                    [*(f.value for f in TIMBRE_FAMILIES), "pitch"], thresholds, strict=True
                )
            }
        ),
        **info,
    }
    rng = np.random.default_rng(0)
    probe = rng.uniform(-1, 1, (1, N_CHANNELS, 120, 88)).astype(np.float32)
    return export_checked(
        Exported(net).eval(),
        torch.zeros(1, N_CHANNELS, 64, 88),
        probe,
        out,
        input_name="features",
        output_names=["posteriors"],
        dynamic_axes={"features": {0: "batch", 2: "frames"}, "posteriors": {0: "batch", 2: "frames"}},
        meta=meta,
        producer="stemscribe training.transcriber",
        atol=1e-4,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, default=Path("build/transcriber/best.pt"))
    parser.add_argument("--data", type=Path, default=Path("build/transcriber-data"))
    parser.add_argument("--out", type=Path, default=Path("stemscribe/weights/transcriber.onnx"))
    parser.add_argument("--valid-clips", type=int, default=120)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    ckpt = torch.load(args.checkpoint, weights_only=False)
    net = NoteNet(int(ckpt["width"]))
    net.load_state_dict(ckpt["state"])
    net.eval()
    valid = prepare(load_shard(args.data / "valid.npz"))[: args.valid_clips]
    thresholds = tune_thresholds(net, valid)
    scores = evaluate(net, valid, thresholds)
    log.info("step %d, validation with tuned thresholds: %s", ckpt["step"], scores)
    export_net(net, args.out, thresholds, {"step": str(ckpt["step"]), "seed": str(ckpt.get("seed", 0))})


if __name__ == "__main__":
    main()
