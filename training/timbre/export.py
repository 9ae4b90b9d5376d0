"""Export the trained family classifier to ONNX (opset 17) and write its sha256.

    python -m training.timbre.export --run build/timbre-run --out stemscribe/weights/timbre.onnx

The family names and the feature version travel in the ONNX metadata, which `FamilyClassifier`
checks on load; the export is compared with torch on random input before anything is written.
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

from stemscribe import timbre
from stemscribe.onnx_weights import write_weights
from training.timbre.train import ExportWrapper, FamilyNet

log = logging.getLogger(__name__)
OPSET = 17


def export(run: Path, out: Path) -> str:
    """Write `out` and `out`.sha256 from the run folder's checkpoint; returns the sha256."""
    import onnx
    import onnxruntime as ort

    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    net = FamilyNet(**ckpt["config"])
    net.load_state_dict(ckpt["state"])
    wrapper = ExportWrapper(net).eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notes
        torch.onnx.export(
            wrapper,
            (torch.zeros(4, timbre.N_FEATURES),),
            buf,
            dynamo=False,
            opset_version=OPSET,
            input_names=["features"],
            output_names=["probs"],
            dynamic_axes={"features": {0: "notes"}, "probs": {0: "notes"}},
        )
    model = onnx.load_from_string(buf.getvalue())
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
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "stemscribe training.timbre"
    onnx.checker.check_model(model)
    data = model.SerializeToString()

    rng = np.random.default_rng(0)
    x = (rng.standard_normal((333, timbre.N_FEATURES)) * 2).astype(np.float32)
    with torch.no_grad():
        ref = wrapper(torch.from_numpy(x)).numpy()
    (got,) = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"features": x})
    if not np.allclose(ref, got, atol=1e-5):
        raise RuntimeError(f"ONNX export disagrees with torch: max diff {np.abs(ref - got).max()}")

    digest = write_weights(out, data)
    log.info("wrote %s (%d bytes, sha256 %s)", out, len(data), digest)
    return digest


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
