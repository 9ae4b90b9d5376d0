"""basic-pitch's network as a faster graph: the same model, two convolutions laid out for the CPU.

Two of basic-pitch's convolutions have 8 input channels and 8 or 1 output channels over 264 frequency
bins (the 3x39 one after the harmonic stack is ~45 % of the network's time, the contour head ~8 %).
onnxruntime's CPU convolutions work in blocks of 8-16 channels, so these run far below the machine's
speed. `polyphase` rewrites such a convolution exactly: the frequency axis is split into P
interleaved phases (bin f = P a + p) that become channels, the kernel becomes the (C P -> O P) one
over the coarse axis that computes the same sums, and reshapes put the bins back in order. The sums
are the same products in another order (outputs agree to ~1e-6), with P times the channels and a
kernel 1/P as wide: the 3x39 one runs ~2x faster, the whole network ~30 %.

    python -m training.pitch_graph      # writes stemscribe/weights/pitch.onnx and its .sha256

The source is the `nmp.onnx` of the installed basic-pitch 0.4.0 wheel (sha256-checked); the written
graph is checked against it on real audio before anything is written.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from stemscribe.transcription.pitch_model import (
    OUTPUTS,
    SAMPLE_RATE,
    SHIPPED,
    WINDOW_FRAMES,
    WINDOW_SAMPLES,
    wheel_model_path,
)
from stemscribe.transcription.weights import shipped_weights, write_weights

log = logging.getLogger(__name__)

# (node name prefix, phases, frequency bins at its input): the two narrow convolutions over 264 bins.
REWRITES = (("model_1/re_lu_1/", 4, 264), ("model_1/contours-reduced/", 4, 264))
ATOL = 1e-5


def polyphase(model: Any, prefix: str, phases: int, *, height: int, width: int) -> None:
    """Rewrite, in place, the stride-1 Conv whose name starts with `prefix` over (N, C, height, width)
    input as the same convolution over `phases` interleaved phases of the last axis (see module doc)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    matches = [n for n in graph.node if n.op_type == "Conv" and n.name.startswith(prefix)]
    if len(matches) != 1:
        raise ValueError(f"expected one Conv named {prefix}*, found {len(matches)}")
    node = matches[0]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if attrs.get("strides", [1, 1]) != [1, 1] or attrs.get("dilations", [1, 1]) != [1, 1]:
        raise ValueError(f"{node.name}: only stride-1, undilated convolutions can be rewritten")
    if attrs.get("group", 1) != 1 or width % phases:
        raise ValueError(f"{node.name}: needs group 1 and a width ({width}) divisible by {phases}")
    init = {i.name: i for i in graph.initializer}
    weight = numpy_helper.to_array(init[node.input[1]])
    bias = numpy_helper.to_array(init[node.input[2]]) if len(node.input) > 2 else None
    out_ch, in_ch, k_h, k_w = weight.shape
    pad_top, pad_left, pad_bottom, pad_right = attrs.get("pads", [0, 0, 0, 0])
    if pad_left + pad_right != k_w - 1:
        raise ValueError(f"{node.name}: only 'same' padding along the rewritten axis")
    # Output bin P a + p reads input bin P a + p + j - pad_left = P (a + d) + q for tap j: the tap
    # joins output phase p to input phase q at coarse offset d.
    taps = [
        (p, q, j, (p + j - pad_left - q) // phases)
        for p in range(phases)
        for q in range(phases)
        for j in range(k_w)
        if (p + j - pad_left - q) % phases == 0
    ]
    d_min, d_max = min(t[3] for t in taps), max(t[3] for t in taps)
    coarse = np.zeros((out_ch * phases, in_ch * phases, k_h, d_max - d_min + 1), np.float32)
    for p, q, j, d in taps:
        coarse[p::phases, q::phases, :, d - d_min] = weight[:, :, :, j]  # channel o P + p <- o
    name, n = node.name, width // phases

    def const(suffix: str, value: npt.NDArray[Any]) -> str:
        graph.initializer.append(numpy_helper.from_array(value, f"{name}/{suffix}"))
        return f"{name}/{suffix}"

    def shape(*dims: int) -> str:
        return const(f"shape{len(graph.initializer)}", np.array(dims, np.int64))

    conv_inputs = [f"{name}/split", const("polyphase_weight", coarse)]
    if bias is not None:
        conv_inputs.append(const("polyphase_bias", np.repeat(bias, phases).astype(np.float32)))
    new = [
        helper.make_node("Reshape", [node.input[0], shape(-1, in_ch, height, n, phases)], [f"{name}/r1"]),
        helper.make_node("Transpose", [f"{name}/r1"], [f"{name}/t1"], perm=[0, 1, 4, 2, 3]),
        helper.make_node("Reshape", [f"{name}/t1", shape(-1, in_ch * phases, height, n)], [f"{name}/split"]),
        helper.make_node(
            "Conv",
            conv_inputs,
            [f"{name}/coarse"],
            kernel_shape=[k_h, d_max - d_min + 1],
            pads=[pad_top, -d_min, pad_bottom, d_max],
            name=f"{name}/polyphase",
        ),
        helper.make_node("Reshape", [f"{name}/coarse", shape(-1, out_ch, phases, height, n)], [f"{name}/r2"]),
        helper.make_node("Transpose", [f"{name}/r2"], [f"{name}/t2"], perm=[0, 1, 3, 4, 2]),
        helper.make_node("Reshape", [f"{name}/t2", shape(-1, out_ch, height, width)], [node.output[0]]),
    ]
    at = list(graph.node).index(node)
    graph.node.remove(node)
    for k, added in enumerate(new):
        graph.node.insert(at + k, added)
    for unused in node.input[1:]:
        if not any(unused in other.input for other in graph.node):
            graph.initializer.remove(init[unused])


def build(source: Path) -> bytes:
    """The serialised faster graph of basic-pitch's `source` model."""
    import onnx

    model = onnx.load(str(source))
    for prefix, phases, width in REWRITES:
        polyphase(model, prefix, phases, height=WINDOW_FRAMES, width=width)
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def max_difference(a: Path | bytes, b: Path | bytes, windows: npt.NDArray[np.float32]) -> float:
    """Largest absolute difference of the two graphs' posteriors on (n, WINDOW_SAMPLES, 1) windows."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    sessions = [
        ort.InferenceSession(
            m if isinstance(m, bytes) else str(m), options, providers=["CPUExecutionProvider"]
        )
        for m in (a, b)
    ]
    name = sessions[0].get_inputs()[0].name
    outs = [s.run(list(OUTPUTS), {name: windows}) for s in sessions]
    return max(float(np.abs(x - y).max()) for x, y in zip(*outs, strict=True))


def probe_windows() -> npt.NDArray[np.float32]:
    """Windows of the bundled example song, the real music the rewrite is checked on."""
    from stemscribe.audio import load_audio

    example = Path(__file__).resolve().parents[1] / "stemscribe" / "data" / "example.flac"
    audio = load_audio(example, sr=SAMPLE_RATE, mono=True).samples.astype(np.float32)
    starts = range(0, audio.shape[0] - WINDOW_SAMPLES, WINDOW_SAMPLES // 2)
    return np.stack([audio[s : s + WINDOW_SAMPLES] for s in starts])[:, :, None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.pitch_graph", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, default=shipped_weights(SHIPPED))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    source = wheel_model_path()
    data = build(source)
    diff = max_difference(source, data, probe_windows())
    if diff > ATOL:
        raise SystemExit(f"the rewritten graph differs from {source} by {diff:.2e} (limit {ATOL:.0e})")
    digest = write_weights(args.out, data)
    log.info("wrote %s (sha256 %s); posteriors within %.1e of %s", args.out, digest, diff, source)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
