"""Export the trained program classifier to ONNX (opset 17) and write its sha256.

    python -m training.program.export --run build/program-run --out stemscribe/weights/program.onnx

The graph maps timbre features (n, N_FEATURES) to logits (n, 128); `ProgramClassifier` takes the
softmax over a family's programs. The feature version and the program count travel in the ONNX
metadata, which `ProgramClassifier` checks on load; the export is compared with torch on random input
before anything is written.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch

from stemscribe.transcription import programs, timbre
from training.onnx_export import export_checked
from training.timbre.train import FamilyNet

log = logging.getLogger(__name__)


def export_net(net: FamilyNet, out: Path, meta: dict[str, str]) -> str:
    """Write `out` and `out`.sha256 from a network; returns the sha256."""
    meta = {
        "n_programs": str(programs.N_PROGRAMS),
        "feature_version": str(timbre.FEATURE_VERSION),
        "n_features": str(timbre.N_FEATURES),
        "sample_rate": str(timbre.SAMPLE_RATE),
        **meta,
    }
    rng = np.random.default_rng(0)
    return export_checked(
        net.eval(),
        torch.zeros(4, timbre.N_FEATURES),
        (rng.standard_normal((333, timbre.N_FEATURES)) * 2).astype(np.float32),
        out,
        input_name="features",
        output_names=["logits"],
        dynamic_axes={"features": {0: "notes"}, "logits": {0: "notes"}},
        meta=meta,
        producer="stemscribe training.program",
        atol=1e-4,
    )


def export(run: Path, out: Path) -> str:
    """Write `out` and `out`.sha256 from the run folder's checkpoint; returns the sha256."""
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    net = FamilyNet(**ckpt["config"], n_out=programs.N_PROGRAMS)
    net.load_state_dict(ckpt["state"])
    return export_net(net, out, {"epoch": str(ckpt["epoch"]), "seed": str(ckpt["seed"])})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, default=Path("build/program-run"))
    parser.add_argument("--out", type=Path, default=programs.default_weights_path())
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    export(args.run, args.out)


if __name__ == "__main__":
    main()
