"""Export a trained torch module to our ONNX weights: opset 17, metadata, checked against torch, sha256.

The drum model, the timbre classifier and the note verifier all ship this way; `export_checked` is the
one path from a module to `stemscribe/weights/X.onnx` + `X.onnx.sha256`.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from stemscribe.transcription.weights import write_weights

log = logging.getLogger(__name__)
OPSET = 17


def export_checked(
    module: nn.Module,
    example: torch.Tensor,
    probe: npt.NDArray[np.float32],
    out: Path,
    *,
    input_name: str,
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]],
    meta: dict[str, str],
    producer: str,
    atol: float,
    finish: Callable[[bytes], bytes] | None = None,
) -> str:
    """Export `module` (eval mode, one input traced with `example`) and write `out` and its sha256.

    `meta` goes into the ONNX metadata; before anything is written the graph is checked and its
    outputs on `probe` must agree with torch's within `atol`. `finish`, when given, turns the checked
    graph's bytes into the bytes that ship (a rewrite that checks its own result). Returns the sha256.
    """
    import onnx
    import onnxruntime as ort

    module = module.eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and batch-size notes
        torch.onnx.export(
            module,
            (example,),
            buf,
            dynamo=False,
            opset_version=OPSET,
            input_names=[input_name],
            output_names=output_names,
            dynamic_axes=dynamic_axes,
        )
    model = onnx.load_from_string(buf.getvalue())
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = producer
    onnx.checker.check_model(model)
    data = model.SerializeToString()

    with torch.no_grad():
        ref = module(torch.from_numpy(probe))
    refs = [t.numpy() for t in (ref if isinstance(ref, (tuple, list)) else (ref,))]
    got = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {input_name: probe})
    for r, g in zip(refs, got, strict=True):
        if not np.allclose(r, g, atol=atol):
            raise RuntimeError(f"ONNX export disagrees with torch: max diff {np.abs(r - g).max()}")
    if finish is not None:
        data = finish(data)

    digest = write_weights(out, data)
    log.info("wrote %s (%d bytes, sha256 %s)", out, len(data), digest)
    return digest
