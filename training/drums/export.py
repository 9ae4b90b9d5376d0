"""Export the trained drum network to ONNX (opset 17) with its thresholds, and write the sha256.

    python -m training.drums.export --run build/drums-run --out stemscribe/weights/drums.onnx

The per-class peak thresholds tuned on validation travel in the ONNX metadata ("thresholds");
the export is checked against torch on random input before anything is written.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from stemscribe import drum_model
from stemscribe.onnx_weights import write_weights
from training.drums.model import DrumNet, ExportWrapper

log = logging.getLogger(__name__)
OPSET = 17


def export(run: Path, out: Path) -> str:
    """Write `out` and `out`.sha256 from the run folder's checkpoint; returns the sha256."""
    import onnx
    import onnxruntime as ort

    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    thresholds = json.loads((run / "thresholds.json").read_text())["thresholds"]
    net = DrumNet(**ckpt["config"])
    net.load_state_dict(ckpt["state"])
    wrapper = ExportWrapper(net).eval()
    example = torch.zeros(1, 300, drum_model.N_MELS)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and batch-size notes
        torch.onnx.export(
            wrapper,
            (example,),
            buf,
            dynamo=False,
            opset_version=OPSET,
            input_names=["mel"],
            output_names=["onset", "velocity"],
            dynamic_axes={"mel": {1: "frames"}, "onset": {1: "frames"}, "velocity": {1: "frames"}},
        )
    model = onnx.load_from_string(buf.getvalue())
    meta = {
        "thresholds": json.dumps([float(t) for t in thresholds]),
        "classes": json.dumps(list(drum_model.DRUM_CLASSES)),
        "sample_rate": str(drum_model.SAMPLE_RATE),
        "hop": str(drum_model.HOP),
        "n_fft": str(drum_model.N_FFT),
        "n_mels": str(drum_model.N_MELS),
        "training_step": str(ckpt["step"]),
    }
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "stemscribe training.drums"
    onnx.checker.check_model(model)
    data = model.SerializeToString()

    # The exported graph must agree with torch.
    rng = np.random.default_rng(0)
    mel = (rng.standard_normal((1, 777, drum_model.N_MELS)) * 3 - 8).astype(np.float32)
    with torch.no_grad():
        ref = [t.numpy() for t in wrapper(torch.from_numpy(mel))]
    got = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"mel": mel})
    for r, g in zip(ref, got, strict=True):
        if not np.allclose(r, g, atol=1e-4):
            raise RuntimeError(f"ONNX export disagrees with torch: max diff {np.abs(r - g).max()}")

    digest = write_weights(out, data)
    log.info("wrote %s (%d bytes, sha256 %s)", out, len(data), digest)
    return digest


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
