"""Export the trained family classifier to ONNX (opset 17) and write its sha256.

    python -m training.timbre.export --run build/timbre-run --out stemscribe/weights/timbre.onnx

The family names and the feature version travel in the ONNX metadata, which `FamilyClassifier`
checks on load; the export is compared with torch on random input before anything is written.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch

from stemscribe.transcription import timbre
from training.onnx_export import export_checked
from training.timbre.train import ExportWrapper, FamilyNet

log = logging.getLogger(__name__)


def export(run: Path, out: Path) -> str:
    """Write `out` and `out`.sha256 from the run folder's checkpoint; returns the sha256."""
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    net = FamilyNet(**ckpt["config"])
    net.load_state_dict(ckpt["state"])
    meta = {
        "families": json.dumps([f.value for f in timbre.TIMBRE_FAMILIES]),
        "feature_version": str(timbre.FEATURE_VERSION),
        "n_features": str(timbre.N_FEATURES),
        "sample_rate": str(timbre.SAMPLE_RATE),
        "n_fft": str(timbre.N_FFT),
        "hop": str(timbre.HOP),
        "epoch": str(ckpt["epoch"]),
        "seed": str(ckpt["seed"]),
    }
    rng = np.random.default_rng(0)
    return export_checked(
        ExportWrapper(net),
        torch.zeros(4, timbre.N_FEATURES),
        (rng.standard_normal((333, timbre.N_FEATURES)) * 2).astype(np.float32),
        out,
        input_name="features",
        output_names=["probs"],
        dynamic_axes={"features": {0: "notes"}, "probs": {0: "notes"}},
        meta=meta,
        producer="stemscribe training.timbre",
        atol=1e-5,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, default=Path("build/timbre-run"))
    parser.add_argument("--out", type=Path, default=timbre.default_weights_path())
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    export(args.run, args.out)


if __name__ == "__main__":
    main()
