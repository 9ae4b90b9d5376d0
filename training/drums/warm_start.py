"""Start a training run from shipped ONNX drum weights: the network's body, and the heads of the classes
both class lists share; the other classes' heads start fresh.

    python -m training.drums.warm_start --onnx stemscribe/weights/drums.onnx --data build/drums-data \
        --out build/drums-warm/start.pt
    python -m training.drums.train --resume build/drums-warm/start.pt --out build/drums-run

The export folded each batch norm into its convolution, so the convolutions take the folded weights
and each batch norm is set to pass its input through unchanged: its running statistics and its affine
scale and shift are the statistics of the folded convolution's output on a sample of the training
data, which batch normalisation then removes and puts back. The checkpoint holds weights only (step 0),
so `train --resume` continues it with a fresh AdamW at `--resume-lr`.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch

from stemscribe.transcription.drums import DRUM_CLASSES
from training.drums.model import DrumNet

log = logging.getLogger(__name__)


def _gru_gates(w: np.ndarray) -> np.ndarray:
    """ONNX gate order (z, r, h) along the first axis -> torch's (r, z, n)."""
    z, r, h = np.split(w, 3, axis=0)
    return np.concatenate([r, z, h], axis=0)


def net_from_onnx(path: Path, sample: np.ndarray) -> tuple[DrumNet, list[int]]:
    """A DrumNet for DRUM_CLASSES holding the weights of the ONNX export at `path`; `sample` is
    (frames, N_MELS) of training log-mels for the batch-norm statistics. Returns the net and the
    classes whose heads came from the file."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    old_classes = [int(k) for k in json.loads(meta["classes"])]
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    convs = sorted((k for k in init if k.startswith("onnx::Conv_")), key=lambda k: int(k.split("_")[-1]))
    grus = sorted((k for k in init if k.startswith("onnx::GRU_")), key=lambda k: int(k.split("_")[-1]))
    mats = sorted((k for k in init if k.startswith("onnx::MatMul_")), key=lambda k: int(k.split("_")[-1]))
    w1, b1, w2, b2 = (init[k] for k in convs)
    bias, w_ih, w_hh = (init[k] for k in grus)  # B (2, 6H), W (2, 3H, in), R (2, 3H, H)
    width, hidden = w1.shape[0], w_hh.shape[2]
    net = DrumNet(width=width, hidden=hidden)
    state = net.state_dict()
    t = torch.from_numpy
    state["mean"], state["std"] = t(init["net.mean"].copy()), t(init["net.std"].copy())
    state["conv1.weight"], state["conv1.bias"] = t(w1.copy()), t(b1.copy())
    state["conv2.weight"], state["conv2.bias"] = t(w2.copy()), t(b2.copy())
    for d, suffix in enumerate(("", "_reverse")):
        state[f"gru.weight_ih_l0{suffix}"] = t(_gru_gates(w_ih[d]).copy())
        state[f"gru.weight_hh_l0{suffix}"] = t(_gru_gates(w_hh[d]).copy())
        state[f"gru.bias_ih_l0{suffix}"] = t(_gru_gates(bias[d, : 3 * hidden]).copy())
        state[f"gru.bias_hh_l0{suffix}"] = t(_gru_gates(bias[d, 3 * hidden :]).copy())
    kept = [k for k in old_classes if k in DRUM_CLASSES]
    for head, mat, bias_name in (
        ("onset", mats[0], "net.onset.bias"),
        ("velocity", mats[1], "net.velocity.bias"),
    ):
        weight, b = state[f"{head}.weight"].clone(), state[f"{head}.bias"].clone()
        for i, key in enumerate(old_classes):
            if key in DRUM_CLASSES:
                j = DRUM_CLASSES.index(key)
                weight[j] = t(init[mat][:, i].copy())
                b[j] = float(init[bias_name][i])
        for j, key in enumerate(DRUM_CLASSES):
            if key not in old_classes:  # a new class starts rare and flat; its gradients flow
                weight[j] = 0.0
                b[j] = -5.0 if head == "onset" else 0.0  # onset prior 0.7 %
        state[f"{head}.weight"], state[f"{head}.bias"] = weight, b
    net.load_state_dict(state)
    # Batch norms that pass their input through: statistics of each folded convolution's output.
    net.eval()
    with torch.no_grad():
        x = (t(sample[None].astype(np.float32)) - net.mean) / net.std
        flux = torch.cat([torch.zeros_like(x[:, :1]), torch.relu(x[:, 1:] - x[:, :-1])], dim=1)
        h = torch.cat([x, flux], dim=2).transpose(1, 2)
        for conv, bn in ((net.conv1, net.bn1), (net.conv2, net.bn2)):
            y = conv(h)
            mu, var = y.mean(dim=(0, 2)), y.var(dim=(0, 2))
            bn.running_mean.copy_(mu)
            bn.running_var.copy_(var)
            bn.weight.copy_(torch.sqrt(var + bn.eps))
            bn.bias.copy_(mu)
            h = torch.relu(y) if conv is net.conv1 else h + torch.relu(y)
    return net, kept


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--onnx", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("build/drums-data"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    features = np.load(args.data / "train" / "features.npy", mmap_mode="r")
    sample = np.asarray(features[:20000], np.float32)  # contiguous: whole clips, their flux intact
    net, kept = net_from_onnx(args.onnx, sample)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    config = {"width": net.conv1.out_channels, "hidden": net.gru.hidden_size}
    ckpt = {"state": net.state_dict(), "config": config, "step": 0, "valid_f1": -1.0}
    ckpt["warm_start"] = str(args.onnx)
    torch.save(ckpt, args.out)
    log.info("%s: heads of %s carried over; written %s", args.onnx, kept, args.out)


if __name__ == "__main__":
    main()
