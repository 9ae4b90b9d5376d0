"""The faster basic-pitch graph: the polyphase rewrite computes the same convolution, and the shipped
pitch.onnx is exactly what the rewrite makes of the wheel's nmp.onnx."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the rewrite edits ONNX graphs (onnx, installed by make install)")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from stemscribe.errors import ModelError  # noqa: E402
from stemscribe.transcription import pitch_model  # noqa: E402
from stemscribe.transcription.weights import shipped_weights, sidecar  # noqa: E402
from training.pitch_graph import build, max_difference, polyphase, probe_windows  # noqa: E402


def _conv_model(weight: np.ndarray, bias: np.ndarray | None, pads: list[int], height: int, width: int):
    inputs = ["x", "w"] + (["b"] if bias is not None else [])
    inits = [numpy_helper.from_array(weight, "w")] + (
        [numpy_helper.from_array(bias, "b")] if bias is not None else []
    )
    node = helper.make_node(
        "Conv", inputs, ["y"], kernel_shape=list(weight.shape[2:]), pads=pads, name="net/conv"
    )
    relu = helper.make_node("Relu", ["y"], ["z"], name="net/relu")
    graph = helper.make_graph(
        [node, relu],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, weight.shape[1], height, width])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [None, weight.shape[0], height, width])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _run(model, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize(
    ("out_ch", "in_ch", "k_h", "k_w", "phases", "with_bias"),
    [(3, 2, 3, 7, 4, True), (1, 8, 5, 5, 4, True), (2, 3, 1, 9, 2, False), (4, 1, 3, 3, 3, True)],
)
def test_the_rewrite_computes_the_same_convolution(out_ch, in_ch, k_h, k_w, phases, with_bias) -> None:
    rng = np.random.default_rng(out_ch * 100 + k_w)
    height, width = 6, 12
    weight = rng.standard_normal((out_ch, in_ch, k_h, k_w)).astype(np.float32)
    bias = rng.standard_normal(out_ch).astype(np.float32) if with_bias else None
    pads = [k_h // 2, k_w // 2, k_h // 2, k_w // 2]
    x = rng.standard_normal((2, in_ch, height, width)).astype(np.float32)
    plain = _conv_model(weight, bias, pads, height, width)
    expected = _run(plain, x)
    rewritten = _conv_model(weight, bias, pads, height, width)
    polyphase(rewritten, "net/conv", phases, height=height, width=width)
    onnx.checker.check_model(rewritten)
    ops = [n.op_type for n in rewritten.graph.node]
    assert ops.count("Conv") == 1 and "Transpose" in ops
    conv = next(n for n in rewritten.graph.node if n.op_type == "Conv")
    assert numpy_helper.to_array(
        next(i for i in rewritten.graph.initializer if i.name == conv.input[1])
    ).shape[:2] == (
        out_ch * phases,
        in_ch * phases,
    )
    assert "w" not in {i.name for i in rewritten.graph.initializer}  # the old kernel is dropped
    np.testing.assert_allclose(_run(rewritten, x), expected, rtol=1e-5, atol=1e-5)


def test_the_rewrite_refuses_what_it_cannot_do() -> None:
    weight = np.ones((1, 1, 3, 3), np.float32)
    with pytest.raises(ValueError, match="divisible"):
        polyphase(_conv_model(weight, None, [1, 1, 1, 1], 4, 10), "net/conv", 4, height=4, width=10)
    with pytest.raises(ValueError, match="same"):
        polyphase(_conv_model(weight, None, [1, 0, 1, 0], 4, 8), "net/conv", 4, height=4, width=8)
    with pytest.raises(ValueError, match="one Conv"):
        polyphase(_conv_model(weight, None, [1, 1, 1, 1], 4, 8), "other/", 4, height=4, width=8)


@pytest.fixture(scope="module")
def wheel_model():
    try:
        return pitch_model.wheel_model_path()
    except ModelError as exc:
        pytest.skip(f"basic-pitch's wheel is needed to rebuild the graph: {exc}")


def test_the_shipped_graph_is_the_rewrite_of_the_wheels_model(wheel_model) -> None:
    shipped = shipped_weights(pitch_model.SHIPPED)
    data = build(wheel_model)
    assert hashlib.sha256(data).hexdigest() == sidecar(shipped).read_text().split()[0]
    assert shipped.read_bytes() == data
    assert max_difference(wheel_model, shipped, probe_windows()[:3]) < 1e-5


def test_an_override_must_be_a_known_graph(wheel_model, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("STEMSCRIBE_BASIC_PITCH_MODEL", str(wheel_model))
    assert pitch_model.PitchModel(threads=1).path == wheel_model  # the wheel's own file is accepted
    other = tmp_path / "nmp.onnx"
    other.write_bytes(wheel_model.read_bytes() + b"\0")
    monkeypatch.setenv("STEMSCRIBE_BASIC_PITCH_MODEL", str(other))
    with pytest.raises(ModelError, match="sha256"):
        pitch_model.PitchModel(threads=1)
