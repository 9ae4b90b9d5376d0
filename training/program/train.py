"""Train the program classifier (an MLP over timbre features -> logits over the 128 GM programs) on the CPU.

    python -m training.program.train --data build/program-data --out build/program-run --seed 0

The data are `training.timbre.data`'s (`features`, `family`, `program`). The loss is the cross-entropy
over the note's own family's programs only (the others masked out), as `ProgramClassifier` reads the
logits. Keeps the epoch with the best per-note accuracy on `valid.npz` (training SoundFonts, held-out
seeds) in `checkpoint.pt`; FluidR3_GM's `test.npz` is left to `training.program.evaluate`.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stemscribe.stems import Family
from stemscribe.transcription.programs import N_PROGRAMS, family_mask
from stemscribe.transcription.timbre import TIMBRE_FAMILIES
from training.timbre.train import FamilyNet, train_epoch

log = logging.getLogger(__name__)


def program_masks(family: torch.Tensor) -> torch.Tensor:
    """(n, N_PROGRAMS) True at the programs of each note's family (`family` indexes TIMBRE_FAMILIES)."""
    rows = torch.from_numpy(family_mask()[[list(Family).index(f) for f in TIMBRE_FAMILIES]])
    return rows[family]


def masked_logits(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Logits with the programs outside each note's family pushed out of the softmax."""
    return logits.masked_fill(~mask, -1e4)


def load_split(path: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(features, family, program) tensors of one split."""
    d = np.load(path)
    return (
        torch.from_numpy(d["features"].astype(np.float32)),
        torch.from_numpy(d["family"].astype(np.int64)),
        torch.from_numpy(d["program"].astype(np.int64)),
    )


def accuracy(net: nn.Module, x: torch.Tensor, family: torch.Tensor, program: torch.Tensor) -> float:
    """Per-note accuracy of the argmax over each note's family's programs."""
    net.eval()
    with torch.no_grad():
        pred = masked_logits(net(x), program_masks(family)).argmax(dim=1)
    return float((pred == program).float().mean())


def train(
    data: Path,
    out: Path,
    *,
    seed: int,
    epochs: int,
    hidden: int,
    lr: float,
    dropout: float,
    threads: int,
    extra: tuple[Path, ...] = (),
) -> dict:
    """Train on `data`/train.npz (and `extra` folders' train.npz), keep the best epoch on `data`/valid.npz."""
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    parts = [load_split(d / "train.npz") for d in [data, *extra]]
    x, fam, y = (torch.cat([p[i] for p in parts]) for i in range(3))
    xv, famv, yv = load_split(data / "valid.npz")
    masks = program_masks(fam)
    log.info("train %d notes, valid %d notes", len(y), len(yv))
    net = FamilyNet(x.shape[1], hidden, dropout, n_out=N_PROGRAMS)
    net.mean.copy_(x.mean(dim=0))
    net.std.copy_(x.std(dim=0).clamp_min(1e-3))
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-2)
    batch = 512
    steps = epochs * ((len(y) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    best: dict = {"accuracy": -1.0}
    curve = []
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    for epoch in range(epochs):
        total = train_epoch(
            net, x, lambda out, idx: loss_fn(masked_logits(out, masks[idx]), y[idx]), opt, sched, gen, batch
        )
        acc = accuracy(net, xv, famv, yv)
        curve.append({"epoch": epoch, "loss": round(total / len(y), 4), "valid_accuracy": round(acc, 4)})
        log.info("epoch %d loss %.4f valid acc %.3f (%.0f s)", epoch, total / len(y), acc, time.time() - t0)
        if acc > best["accuracy"]:
            best = {"epoch": epoch, "accuracy": acc}
            torch.save(
                {
                    "state": net.state_dict(),
                    "config": {"n_features": x.shape[1], "hidden": hidden, "dropout": dropout},
                    "epoch": epoch,
                    "seed": seed,
                },
                out / "checkpoint.pt",
            )
    best["train_notes"] = len(y)
    (out / "train.json").write_text(json.dumps({"best": best, "curve": curve}, indent=1))
    log.info("best: %s", best)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("build/program-data"))
    parser.add_argument("--out", type=Path, default=Path("build/program-run"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=1)
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
        dropout=args.dropout,
        threads=args.threads,
        extra=tuple(args.extra),
    )


if __name__ == "__main__":
    main()
