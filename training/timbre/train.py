"""Train the family classifier (a small MLP over `stemscribe.transcription.timbre` features) on the CPU.

    python -m training.timbre.train --data build/timbre-data --out build/timbre-run --seed 0

Keeps the epoch with the best balanced accuracy on `valid.npz` (training SoundFonts, held-out
seeds) in `checkpoint.pt`; FluidR3_GM's `test.npz` is left to `training.timbre.evaluate`.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stemscribe.transcription.timbre import N_FEATURES, TIMBRE_FAMILIES

log = logging.getLogger(__name__)


class FamilyNet(nn.Module):
    """Standardise, two hidden layers, logits over TIMBRE_FAMILIES (or `n_out` outputs)."""

    def __init__(
        self,
        n_features: int = N_FEATURES,
        hidden: int = 256,
        dropout: float = 0.2,
        n_out: int = len(TIMBRE_FAMILIES),
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        self.net = nn.Sequential(
            nn.Linear(n_features, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


class ExportWrapper(nn.Module):
    """The network with a softmax: features (n, N_FEATURES) -> probabilities (n, n_families)."""

    def __init__(self, net: FamilyNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x), dim=-1)


def balanced_accuracy(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean per-class recall over the classes present in `truth`."""
    recalls = [float((pred[truth == c] == c).mean()) for c in np.unique(truth)]
    return float(np.mean(recalls)) if recalls else 0.0


def load_split(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    d = np.load(path)
    return torch.from_numpy(d["features"].astype(np.float32)), torch.from_numpy(d["family"].astype(np.int64))


def train_epoch(
    net: FamilyNet,
    x: torch.Tensor,
    loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    gen: torch.Generator,
    batch: int,
) -> float:
    """One epoch over the rows of `x` in a random order from `gen`, with mild feature noise; `loss_of`
    gives a batch's loss from the net's output and the batch's row indices. Returns the summed loss."""
    net.train()
    order = torch.randperm(len(x), generator=gen)
    total = 0.0
    for i in range(0, len(x), batch):
        idx = order[i : i + batch]
        xb = x[idx]
        xb = xb + 0.05 * torch.randn(xb.shape, generator=gen) * net.std  # mild feature noise
        loss = loss_of(net(xb), idx)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        total += loss.item() * len(idx)
    return total


def train(
    data: Path,
    out: Path,
    *,
    seed: int,
    epochs: int,
    hidden: int,
    lr: float,
    threads: int,
    init: Path | None = None,
    extra: tuple[Path, ...] = (),
) -> dict:
    """Train on `data`/train.npz (and `extra` folders' train.npz), keep the best epoch on `data`/valid.npz.

    `init` continues a checkpoint.
    """
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    parts = [load_split(d / "train.npz") for d in [data, *extra]]
    x, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    xv, yv = load_split(data / "valid.npz")
    log.info("train %d notes, valid %d notes", len(y), len(yv))
    net = FamilyNet(x.shape[1], hidden)
    if init is not None:  # continue from a checkpoint, keeping its input standardisation
        net.load_state_dict(torch.load(init, weights_only=True)["state"])
    else:
        net.mean.copy_(x.mean(dim=0))
        net.std.copy_(x.std(dim=0).clamp_min(1e-3))
    counts = torch.bincount(y, minlength=len(TIMBRE_FAMILIES)).float().clamp_min(1.0)
    weights = (counts.sum() / counts / len(TIMBRE_FAMILIES)).clamp(max=10.0)
    loss_fn = nn.CrossEntropyLoss(weight=weights, label_smoothing=0.05)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-3)
    batch = 512
    steps = epochs * ((len(y) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    best = {"balanced_accuracy": -1.0}
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    for epoch in range(epochs):
        total = train_epoch(net, x, lambda out, idx: loss_fn(out, y[idx]), opt, sched, gen, batch)
        net.eval()
        with torch.no_grad():
            pred = net(xv).argmax(dim=1).numpy()
        acc = float((pred == yv.numpy()).mean())
        bal = balanced_accuracy(pred, yv.numpy())
        log.info(
            "epoch %d loss %.4f valid acc %.3f balanced %.3f (%.0f s)",
            epoch,
            total / len(y),
            acc,
            bal,
            time.time() - t0,
        )
        if bal > best["balanced_accuracy"]:
            best = {"epoch": epoch, "accuracy": acc, "balanced_accuracy": bal}
            torch.save(
                {
                    "state": net.state_dict(),
                    "config": {"n_features": x.shape[1], "hidden": hidden},
                    "epoch": epoch,
                    "seed": seed,
                },
                out / "checkpoint.pt",
            )
    (out / "train.json").write_text(json.dumps(best, indent=1))
    log.info("best: %s", best)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("build/timbre-data"))
    parser.add_argument("--out", type=Path, default=Path("build/timbre-run"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--init", type=Path, default=None, help="checkpoint.pt to continue from")
    parser.add_argument("--extra", type=Path, nargs="*", default=[], help="more data folders to train on")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    train(
        args.data,
        args.out,
        seed=args.seed,
        epochs=args.epochs,
        hidden=args.hidden,
        lr=args.lr,
        threads=args.threads,
        init=args.init,
        extra=tuple(args.extra),
    )


if __name__ == "__main__":
    main()
