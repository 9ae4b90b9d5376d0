"""Train the note verifier (a small MLP over `transcription.verify.note_features`); thresholds, export.

    python -m training.verify.train --data build/verify-data --run build/verify-run \\
        --out stemscribe/weights/verify.onnx

Binary cross-entropy on the candidates of `train.npz` (AdamW, one-cycle learning rate); the epoch
with the best validation F1 is kept. Each role's threshold is the one that maximises that role's note
F1 on `valid.npz`, recall counted against all true notes (a note the decoder never proposed is a
miss). The log prints, per role, that F1 next to the F1 of the role's thresholds alone, so a role the
verifier does not help is plain to see. The ONNX file carries the feature version, the roles and the
thresholds; `stemscribe.transcription.verify.THRESHOLD_SCALE` scales them at run time.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from stemscribe.transcription import verify
from training.onnx_export import export_checked
from training.timbre.train import FamilyNet

log = logging.getLogger(__name__)
THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.025), 3)


class VerifierNet(FamilyNet):
    """The timbre classifier's MLP (standardise, two GELU layers) with one logit: is it a real note."""

    def __init__(self, n_features: int = verify.N_FEATURES, hidden: int = 128, dropout: float = 0.1) -> None:
        super().__init__(n_features, hidden, dropout, n_out=1)
        self.config = {"n_features": n_features, "hidden": hidden, "dropout": dropout}

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # logits (n,)
        return super().forward(x).squeeze(-1)


class ExportWrapper(nn.Module):
    def __init__(self, net: VerifierNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x))


def role_f1(
    probs: npt.NDArray[np.float32], data: dict[str, np.ndarray], role: int, threshold: float
) -> float:
    """Note F1 of one role's clips when candidates below `threshold` are dropped."""
    mask = data["role"] == role
    kept = probs[mask] >= threshold
    tp = float((kept & data["label"][mask]).sum())
    n_ref = float(data["clip_ref"][data["clip_role"] == role].sum())
    n_est = float(kept.sum())
    return 2 * tp / max(n_ref + n_est, 1.0)


def strict_f1(data: dict[str, np.ndarray], role: int) -> float:
    m = data["clip_role"] == role
    tp, n_ref, n_est = (
        data["clip_strict_tp"][m].sum(),
        data["clip_ref"][m].sum(),
        data["clip_strict"][m].sum(),
    )
    return float(2 * tp / max(n_ref + n_est, 1))


def choose_thresholds(
    probs: npt.NDArray[np.float32], data: dict[str, np.ndarray]
) -> dict[str, dict[str, float]]:
    out = {}
    for r, name in enumerate(verify.ROLES):
        if not (data["clip_role"] == r).any():
            continue
        scores = [role_f1(probs, data, r, t) for t in THRESHOLDS]
        best = int(np.argmax(scores))
        out[name] = {
            "threshold": float(THRESHOLDS[best]),
            "f1": scores[best],
            "f1_thresholds_only": strict_f1(data, r),
            "clips": int((data["clip_role"] == r).sum()),
        }
    return out


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def train(
    data_dir: Path,
    run: Path,
    *,
    epochs: int,
    hidden: int,
    seed: int,
    threads: int,
    extra: tuple[Path, ...] = (),
) -> dict:
    """Train on data_dir/train.npz (and each `extra` folder's train.npz); validate on its valid.npz."""
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    parts = [_load(d / "train.npz") for d in (data_dir, *extra)]
    tr = {k: np.concatenate([p[k] for p in parts]) for k in ("features", "label")}
    va = _load(data_dir / "valid.npz")
    x = torch.from_numpy(tr["features"].astype(np.float32))
    y = torch.from_numpy(tr["label"].astype(np.float32))
    xv = torch.from_numpy(va["features"].astype(np.float32))
    net = VerifierNet(hidden=hidden)
    net.mean.copy_(x.mean(0))
    net.std.copy_(x.std(0).clamp_min(1e-3))
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    steps_per_epoch = (len(x) + 511) // 512
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=epochs * steps_per_epoch)
    loss_fn = nn.BCEWithLogitsLoss()
    best, history = -1.0, []
    run.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(x))
        total = 0.0
        for i in range(0, len(x), 512):
            idx = order[i : i + 512]
            loss = loss_fn(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        net.eval()
        with torch.no_grad():
            pv = torch.sigmoid(net(xv)).numpy()
        roles = choose_thresholds(pv, va)
        # all roles' notes together, each at its own threshold
        tp = n_est = 0.0
        for name, r in roles.items():
            m = va["role"] == verify.ROLES.index(name)
            kept = pv[m] >= r["threshold"]
            tp += float((kept & va["label"][m]).sum())
            n_est += float(kept.sum())
        f1 = 2 * tp / (va["clip_ref"].sum() + n_est)
        history.append({"epoch": epoch, "loss": total / len(x), "valid_f1": f1})
        log.info("epoch %d loss %.4f valid F1 %.4f (%.0f s)", epoch, total / len(x), f1, time.time() - t0)
        if f1 > best:
            best = f1
            torch.save(
                {
                    "config": net.config,
                    "state": net.state_dict(),
                    "epoch": epoch,
                    "seed": seed,
                    "thresholds": {k: v["threshold"] for k, v in roles.items()},
                    "roles": roles,
                },
                run / "checkpoint.pt",
            )
    strict_tp = va["clip_strict_tp"].sum()
    summary = {
        "best_valid_f1": best,
        "valid_f1_thresholds_only": float(2 * strict_tp / (va["clip_ref"].sum() + va["clip_strict"].sum())),
        "history": history,
        "roles": torch.load(run / "checkpoint.pt", weights_only=True)["roles"],
        "train_candidates": len(x),
        "valid_candidates": len(xv),
    }
    (run / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def export(run: Path, out: Path) -> str:
    """Write `out` and `out`.sha256 from the run folder's best checkpoint; returns the sha256."""
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    net = VerifierNet(**ckpt["config"])
    net.load_state_dict(ckpt["state"])
    meta = {
        "feature_version": str(verify.FEATURE_VERSION),
        "roles": json.dumps(verify.ROLES),
        "thresholds": json.dumps(ckpt["thresholds"]),
        "n_features": str(verify.N_FEATURES),
        "epoch": str(ckpt["epoch"]),
        "seed": str(ckpt["seed"]),
    }
    return export_checked(
        ExportWrapper(net),
        torch.zeros(4, verify.N_FEATURES),
        np.random.default_rng(0).standard_normal((257, verify.N_FEATURES)).astype(np.float32),
        out,
        input_name="features",
        output_names=["probs"],
        dynamic_axes={"features": {0: "notes"}, "probs": {0: "notes"}},
        meta=meta,
        producer="stemscribe training.verify",
        atol=1e-5,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("build/verify-data"))
    parser.add_argument(
        "--extra", type=Path, nargs="*", default=[], help="more data folders whose train.npz is added"
    )
    parser.add_argument("--run", type=Path, default=Path("build/verify-run"))
    parser.add_argument(
        "--out", type=Path, default=None, help="export the best checkpoint here (ONNX + .sha256)"
    )
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    summary = train(
        args.data,
        args.run,
        epochs=args.epochs,
        hidden=args.hidden,
        seed=args.seed,
        threads=args.threads,
        extra=tuple(args.extra),
    )
    for name, r in summary["roles"].items():
        log.info(
            "%-9s threshold %.3f  F1 %.3f (thresholds alone %.3f, %d clips)",
            name,
            r["threshold"],
            r["f1"],
            r["f1_thresholds_only"],
            r["clips"],
        )
    log.info(
        "valid F1 %.4f (thresholds alone %.4f)", summary["best_valid_f1"], summary["valid_f1_thresholds_only"]
    )
    if args.out is not None:
        export(args.run, args.out)


if __name__ == "__main__":
    main()
