"""Export the trained drum network to ONNX (opset 17) with its thresholds, and write the sha256.

    python -m training.drums.export --run build/drums-run --out stemscribe/weights/drums.onnx

The per-class peak thresholds tuned on validation travel in the ONNX metadata ("thresholds"), beside
the classes' GM keys ("classes", the order of the outputs), names ("class_names") and member keys;
the export is checked against torch on random input before anything is written. The export writes no
mix thresholds ("thresholds_mix"), so its weights decode mixes with the stems' thresholds until
`python -m training.drums.tune_thresholds --write` tunes both on dev songs.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch

from stemscribe.transcription import drum_model
from stemscribe.transcription.drums import DRUM_CLASS_NAMES, DRUM_CLASS_TABLE, DRUM_CLASSES
from training.drums.model import DrumNet, ExportWrapper
from training.onnx_export import export_checked

log = logging.getLogger(__name__)


def export(run: Path, out: Path) -> str:
    """Write `out` and `out`.sha256 from the run folder's checkpoint; returns the sha256."""
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    thresholds = json.loads((run / "thresholds.json").read_text())["thresholds"]
    net = DrumNet(**ckpt["config"])
    net.load_state_dict(ckpt["state"])
    meta = {
        "thresholds": json.dumps([float(t) for t in thresholds]),
        "classes": json.dumps(list(DRUM_CLASSES)),
        "class_names": json.dumps([DRUM_CLASS_NAMES[k] for k in DRUM_CLASSES]),
        "class_members": json.dumps({str(c.key): list(c.members + c.extra) for c in DRUM_CLASS_TABLE}),
        "sample_rate": str(drum_model.SAMPLE_RATE),
        "hop": str(drum_model.HOP),
        "n_fft": str(drum_model.N_FFT),
        "n_mels": str(drum_model.N_MELS),
        "training_step": str(ckpt["step"]),
    }
    rng = np.random.default_rng(0)
    mel = (rng.standard_normal((1, 777, drum_model.N_MELS)) * 3 - 8).astype(np.float32)
    return export_checked(
        ExportWrapper(net),
        torch.zeros(1, 300, drum_model.N_MELS),
        mel,
        out,
        input_name="mel",
        output_names=["onset", "velocity"],
        dynamic_axes={"mel": {1: "frames"}, "onset": {1: "frames"}, "velocity": {1: "frames"}},
        meta=meta,
        producer="stemscribe training.drums",
        atol=1e-4,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, default=Path("build/drums-run"))
    parser.add_argument("--out", type=Path, default=drum_model.default_weights_path())
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    export(args.run, args.out)


if __name__ == "__main__":
    main()
