"""Export a trained transcription network to ONNX (opset 17) with its thresholds, and write its sha256.

    python -m training.transcriber.export --checkpoint build/transcriber/best.pt \
        --data build/transcriber-data --out stemscribe/weights/transcriber.onnx

Per-family (onset, frame) thresholds are tuned on the validation file (training fonts, held-out
seeds) and travel in the metadata with the families, the feature version and the training step;
`NetworkTranscriber` checks them on load. The export is compared with torch before anything is written.

Three steps make the shipped graph faster, each a flag and each checked as it is made:
`--fused-head` (default on) spells the family softmax so that onnxruntime runs it without
transposes (`model.fused_family_posteriors`; a third less network time, posteriors equal to ~1e-7:
the same notes on every dev mix); `--float16-output` (default on) casts the posteriors to float16
inside the graph, as `NetworkTranscriber` stores them (`float16_output`: the same bits as numpy's
conversion); `--int8` (default off) puts the convolutions and residual additions in int8,
calibrated on clips of the first training shard (`quantize_int8`: another third less network time,
but ~10 % of a mix's notes change and held-out figures move by -0.002..+0.003, see README). The
graph written is scored on the validation clips beside the torch net; int8 weights that lose more
than `INT8_TOLERANCE` there are replaced by float ones.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from stemscribe.transcription.network import FEATURE_VERSION, N_CHANNELS
from stemscribe.transcription.timbre import TIMBRE_FAMILIES
from training.onnx_export import export_checked
from training.transcriber.data import load_shard
from training.transcriber.model import Exported, NoteNet
from training.transcriber.train import clip_input, evaluate, prepare, tune_thresholds

log = logging.getLogger(__name__)

CALIBRATION_CLIPS = 16  # clips of shard 0 whose activations set the int8 ranges
CALIBRATION_FRAMES = 640  # each cut to this many frames (~7.4 s): percentile calibration stacks them
CALIBRATION_PERCENTILE = 99.999  # of each activation's values, its int8 range
# What `quantize_int8` puts in int8: the convolutions and, so that activations stay int8 between them,
# the residual additions and ReLUs. The first convolution (it reads the features) and the head's 1x1
# convolution (its logits set every posterior) stay float. Chosen on the dev mixes by how far the
# posteriors moved from the float graph's (mean |frame| difference 0.0017 with all in int8 and min/max
# ranges, 0.0008 so) and confirmed on the held-out split (README "Transcription network").
INT8_OPS = ("Conv", "Relu", "Add")
FLOAT_NODE_PREFIXES = ("/net/stem/", "/net/head/")
INT8_TOLERANCE = 0.005  # validation F1 the int8 graph may lose against the torch net before it is refused


def _run(data: bytes, probe: npt.NDArray[np.float32]) -> npt.NDArray[np.generic]:
    import onnxruntime as ort

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: probe})
    return np.asarray(out)


def float16_output(data: bytes, probe: npt.NDArray[np.float32]) -> bytes:
    """The graph `data` with its one output cast to float16 as its last node.

    Checked on `probe`: the new graph's output must equal numpy's float16 conversion of the old
    graph's output bit for bit, so the posteriors `NetworkTranscriber` stores do not change.
    """
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load_from_string(data)
    graph = model.graph
    (output,) = graph.output
    if output.type.tensor_type.elem_type != TensorProto.FLOAT:
        raise ValueError(f"graph output {output.name} is not float32")
    name, inner = output.name, output.name + "_float32"
    for node in graph.node:
        node.output[:] = [inner if o == name else o for o in node.output]
        node.input[:] = [inner if i == name else i for i in node.input]
    graph.node.append(helper.make_node("Cast", [inner], [name], to=TensorProto.FLOAT16, name="to_float16"))
    output.type.tensor_type.elem_type = TensorProto.FLOAT16
    onnx.checker.check_model(model)
    cast = model.SerializeToString()
    ref = _run(data, probe).astype(np.float16)
    got = _run(cast, probe)
    if got.dtype != np.float16 or not np.array_equal(got.view(np.uint16), ref.view(np.uint16)):
        raise RuntimeError("onnxruntime's float16 cast differs from numpy's conversion")
    return cast


def quantize_int8(
    data: bytes, calibration: Sequence[npt.NDArray[np.float32]], probe: npt.NDArray[np.float32]
) -> bytes:
    """The graph `data` with `INT8_OPS` in int8 (QLinearConv, QLinearAdd: uint8 activations, int8
    weights per output channel) but for the nodes under `FLOAT_NODE_PREFIXES`, activation ranges the
    `CALIBRATION_PERCENTILE` of their values on `calibration` inputs ((N_CHANNELS, T, 88) each; those
    of `CALIBRATION_FRAMES` or more, cut to that, or else all cut to the shortest). Metadata and
    producer are kept. Checked on `probe` against the float graph: the posteriors must stay within 0.1
    of it (a sanity check; accuracy is scored on validation clips, see `main`)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    long = [x for x in calibration if x.shape[1] >= CALIBRATION_FRAMES]
    frames = CALIBRATION_FRAMES if long else min(x.shape[1] for x in calibration)
    inputs = [x[:, :frames] for x in (long or calibration)]

    class _Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._items = iter(inputs)

        def get_next(self) -> dict[str, npt.NDArray[np.float32]] | None:
            x = next(self._items, None)
            return None if x is None else {"features": np.ascontiguousarray(x[None], np.float32)}

    source = onnx.load_from_string(data)
    with tempfile.TemporaryDirectory() as tmp:
        plain, pre, quant = (Path(tmp) / name for name in ("float.onnx", "pre.onnx", "int8.onnx"))
        plain.write_bytes(data)
        quant_pre_process(str(plain), str(pre))
        keep_float = [
            node.name for node in onnx.load(str(pre)).graph.node if node.name.startswith(FLOAT_NODE_PREFIXES)
        ]
        quantize_static(
            str(pre),
            str(quant),
            _Reader(),
            quant_format=QuantFormat.QOperator,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            calibrate_method=CalibrationMethod.Percentile,
            extra_options={"CalibPercentile": CALIBRATION_PERCENTILE},
            op_types_to_quantize=list(INT8_OPS),
            nodes_to_exclude=keep_float,
        )
        model = onnx.load(str(quant))
    del model.metadata_props[:]
    model.metadata_props.extend(source.metadata_props)
    model.producer_name = source.producer_name
    onnx.checker.check_model(model)
    out = model.SerializeToString()
    diff = float(np.abs(_run(out, probe).astype(np.float32) - _run(data, probe)).max())
    if not diff < 0.1:
        raise RuntimeError(f"the int8 graph strays from the float graph by {diff:.3f}")
    return out


def export_net(
    net: NoteNet,
    out: Path,
    thresholds: np.ndarray,
    info: dict[str, str],
    *,
    fused_head: bool = True,
    float16: bool = True,
    int8_calibration: Sequence[npt.NDArray[np.float32]] | None = None,
) -> str:
    """Write `out` and its sha256 for `net` with `thresholds` (10, 2: the families', then "pitch");
    returns the sha256. `fused_head`, `float16` (`float16_output`) and `int8_calibration`
    (`quantize_int8` with these inputs; None: float weights) are the speed steps of the module doc."""
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

    def finish(data: bytes) -> bytes:
        if int8_calibration is not None:
            data = quantize_int8(data, int8_calibration, probe)
        return float16_output(data, probe) if float16 else data

    return export_checked(
        Exported(net, fused_head=fused_head).eval(),
        torch.zeros(1, N_CHANNELS, 64, 88),
        probe,
        out,
        input_name="features",
        output_names=["posteriors"],
        dynamic_axes={"features": {0: "batch", 2: "frames"}, "posteriors": {0: "batch", 2: "frames"}},
        meta=meta,
        producer="stemscribe training.transcriber",
        atol=1e-4,
        finish=finish,
    )


def calibration_inputs(clips: list[dict[str, np.ndarray]]) -> list[npt.NDArray[np.float32]]:
    """The network inputs of whole prepared clips, for `quantize_int8`."""
    return [clip_input(clip, 0, len(clip["note"])) for clip in clips]


def exported_graph(
    path: Path, threads: int = 1
) -> Callable[[npt.NDArray[np.float32]], npt.NDArray[np.generic]]:
    """The graph written at `path` as a `train.Predictor`: one (N_CHANNELS, T, 88) input to its
    (3 * 9, T, 88) posteriors (a session of its own, whatever was loaded from that path before)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(x: npt.NDArray[np.float32]) -> npt.NDArray[np.generic]:
        (out,) = session.run(None, {"features": x[None]})
        return np.asarray(out[0])

    return run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, default=Path("build/transcriber/best.pt"))
    parser.add_argument("--data", type=Path, default=Path("build/transcriber-data"))
    parser.add_argument("--out", type=Path, default=Path("stemscribe/weights/transcriber.onnx"))
    parser.add_argument("--valid-clips", type=int, default=120)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fused-head", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--float16-output", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--int8", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--calibration-clips", type=int, default=CALIBRATION_CLIPS)
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
    info = {"step": str(ckpt["step"]), "seed": str(ckpt.get("seed", 0))}
    calibration = None
    if args.int8:
        shard = prepare(load_shard(args.data / "shard-00000.npz")[: args.calibration_clips])
        calibration = calibration_inputs(shard)
    export_net(
        net,
        args.out,
        thresholds,
        info,
        fused_head=args.fused_head,
        float16=args.float16_output,
        int8_calibration=calibration,
    )
    shipped = evaluate(exported_graph(args.out, args.threads), valid, thresholds)
    log.info("the exported graph on the same clips: %s", shipped)
    lost = max(scores[k] - shipped[k] for k in ("note_f1", "pitch_note_f1", "any_note_f1"))
    if calibration is not None and lost > INT8_TOLERANCE:
        log.warning(
            "int8 loses %.4f of validation F1 (more than %.3f): writing float weights", lost, INT8_TOLERANCE
        )
        export_net(net, args.out, thresholds, info, fused_head=args.fused_head, float16=args.float16_output)
        log.info("float graph: %s", evaluate(exported_graph(args.out, args.threads), valid, thresholds))


if __name__ == "__main__":
    main()
