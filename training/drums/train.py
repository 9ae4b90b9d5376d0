"""Train the drum network on the data `training.drums.data` wrote; deterministic from `--seed`.

    python -m training.drums.train --seed 0 --data build/drums-data --out build/drums-run

Writes `checkpoint.pt` (best on validation), `last.pt` (the latest evaluation step), `curve.json`
(the learning curve) and `thresholds.json` (per-class peak thresholds tuned on the validation split)
under `--out`. Generates the data first when `--data` holds none. Checkpoints carry the optimizer,
scheduler and random states, so `--resume` continues a run exactly:

    python -m training.drums.train --resume build/drums-run/last.pt --out build/drums-run-b

A checkpoint holding model weights only (written before resuming existed) continues from its weights
with a fresh AdamW at the lower `--resume-lr` and a new warmup + cosine schedule over the remaining
steps (`--steps` counts from step 0 of the original run in both cases).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stemscribe.transcription.drum_model import FPS, N_CLASSES, pick_peaks
from training.drums.model import DrumNet
from training.drums.scoring import Counts, score_onsets

log = logging.getLogger(__name__)


@dataclass
class Split:
    """A split on disk: log-mels (frames, mels) float16, clips (offset, frames, is_mix), labels."""

    features: np.ndarray
    clips: np.ndarray
    labels: np.ndarray  # (n, 4): clip, time s, class index, velocity 0..1

    @classmethod
    def load(cls, folder: Path) -> Split:
        return cls(
            np.load(folder / "features.npy", mmap_mode="r"),
            np.load(folder / "clips.npy"),
            np.load(folder / "labels.npy"),
        )

    def clip_labels(self) -> list[np.ndarray]:
        order = np.argsort(self.labels[:, 0], kind="stable")
        lab = self.labels[order]
        bounds = np.searchsorted(lab[:, 0], np.arange(len(self.clips) + 1))
        return [lab[bounds[i] : bounds[i + 1]] for i in range(len(self.clips))]


def frame_targets(labels: np.ndarray, start: int, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Onset targets (with ±1 frame at 0.4), velocity targets and the velocity mask of a window."""
    onset = np.zeros((length, N_CLASSES), np.float32)
    vel = np.zeros((length, N_CLASSES), np.float32)
    mask = np.zeros((length, N_CLASSES), np.float32)
    for _, t, c, v in labels:
        f = int(round(t * FPS)) - start
        c = int(c)
        for d, w in ((-1, 0.4), (1, 0.4), (0, 1.0)):
            g = f + d
            if 0 <= g < length:
                onset[g, c] = max(onset[g, c], w)
                if w == 1.0 or mask[g, c] == 0:
                    vel[g, c] = v
                    mask[g, c] = 1.0 if w == 1.0 else 0.5
    return onset, vel, mask


class Batches:
    """Random training windows, reproducible from a numpy Generator."""

    def __init__(
        self, split: Split, window: int, batch: int, rng: np.random.Generator, augment: bool = True
    ) -> None:
        self.split, self.window, self.batch, self.rng, self.augment = split, window, batch, rng, augment
        self.per_clip = split.clip_labels()

    def next(self) -> tuple[torch.Tensor, ...]:
        xs, ons, vels, masks = [], [], [], []
        for _ in range(self.batch):
            i = int(self.rng.integers(len(self.split.clips)))
            offset, frames, _ = self.split.clips[i]
            start = int(self.rng.integers(0, max(1, frames - self.window + 1)))
            x = np.asarray(self.split.features[offset + start : offset + start + self.window], np.float32)
            if x.shape[0] < self.window:
                x = np.pad(x, ((0, self.window - x.shape[0]), (0, 0)), constant_values=float(x.min()))
            if self.augment and self.rng.random() < 0.5:  # gain and spectral tilt, in the log domain
                tilt = np.linspace(-1.0, 1.0, x.shape[1], dtype=np.float32)
                x = (
                    x
                    + np.float32(self.rng.uniform(-1.5, 1.5))
                    + np.float32(self.rng.uniform(-0.8, 0.8)) * tilt
                )
            o, v, m = frame_targets(self.per_clip[i], start, self.window)
            xs.append(x)
            ons.append(o)
            vels.append(v)
            masks.append(m)
        return tuple(torch.from_numpy(np.stack(a)) for a in (xs, ons, vels, masks))


@torch.no_grad()
def predict_split(net: DrumNet, split: Split) -> list[tuple[np.ndarray, np.ndarray]]:
    """Onset probabilities and velocities (frames, N_CLASSES) of every clip."""
    net.eval()
    out = []
    for offset, frames, _ in split.clips:
        x = torch.from_numpy(np.asarray(split.features[offset : offset + frames], np.float32))[None]
        logits, vel = net(x)
        out.append((torch.sigmoid(logits)[0].numpy(), vel[0].numpy()))
    return out


def score_split(
    preds: list[tuple[np.ndarray, np.ndarray]],
    split: Split,
    thresholds: np.ndarray,
    mixes: bool | None = None,
) -> Counts:
    counts = Counts()
    for (onset, _), (_, _, is_mix), lab in zip(preds, split.clips, split.clip_labels(), strict=True):
        if mixes is not None and bool(is_mix) != mixes:
            continue
        ref = [lab[lab[:, 2] == c, 1] for c in range(N_CLASSES)]
        est = [pick_peaks(onset[:, c], float(thresholds[c])) / FPS for c in range(N_CLASSES)]
        counts.add(score_onsets(ref, est))
    return counts


def tune_thresholds(preds: list[tuple[np.ndarray, np.ndarray]], split: Split) -> np.ndarray:
    """Per-class thresholds maximising each class's F1 on `split`."""
    grid = np.round(np.arange(0.15, 0.86, 0.05), 2)
    best = np.full(N_CLASSES, 0.5)
    scores = np.zeros((len(grid), N_CLASSES))
    for gi, th in enumerate(grid):
        per = score_split(preds, split, np.full(N_CLASSES, th)).per_class()
        scores[gi] = [f for (_, _, f, _) in per.values()]
    best = grid[np.argmax(scores, axis=0)]
    return best.astype(np.float64)


def _lr_lambda(start: int, total: int, warmup: int):
    """Linear warmup then cosine to zero over the `total - start` steps after `start`."""
    span = max(1, total - start)
    return lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / span)))


def train(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(args.seed)
    resume = torch.load(args.resume, weights_only=True) if args.resume else None
    if not (args.data / "train" / "meta.json").is_file():
        from training.drums.data import generate

        generate(args.data, seed=args.seed, train_clips=4000, valid_clips=120, test_clips=80)
    train_split = Split.load(args.data / "train")
    valid_split = Split.load(args.data / "valid")
    args.out.mkdir(parents=True, exist_ok=True)

    config = resume["config"] if resume else {"width": args.width, "hidden": args.hidden}
    net = DrumNet(**config)
    if resume:
        net.load_state_dict(resume["state"])  # carries the input normalisation too
    else:
        sample = np.asarray(train_split.features[:: max(1, len(train_split.features) // 200000)], np.float32)
        net.mean.copy_(torch.from_numpy(sample.mean(axis=0)))
        net.std.copy_(torch.from_numpy(sample.std(axis=0) + 1e-3))
    n_params = sum(p.numel() for p in net.parameters())
    log.info("DrumNet: %d parameters; %d training clips", n_params, len(train_split.clips))

    start = int(resume["step"]) if resume else 0
    full = bool(resume) and "optimizer" in resume and not args.fresh_optimizer
    if start >= args.steps:
        raise SystemExit(f"--steps {args.steps} must exceed the checkpoint's step {start}")
    if full:
        lr, warmup, sched_start = resume["lr_base"], resume["warmup"], resume["sched_start"]
    elif resume:
        lr, warmup, sched_start = args.resume_lr, 50, start
        rng = np.random.default_rng([args.seed, start])  # fresh windows, not a replay of step 1's
        torch.manual_seed(args.seed + start)
        log.info(
            "%s: model weights only (step %d): fresh AdamW at lr %g, cosine over steps %d..%d",
            args.resume,
            start,
            lr,
            start + 1,
            args.steps,
        )
    else:
        lr, warmup, sched_start = args.lr, 200, 0
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(sched_start, args.steps, warmup))
    if full:
        opt.load_state_dict(resume["optimizer"])
        sched.load_state_dict(resume["scheduler"])
        rng.bit_generator.state = resume["numpy_rng"]
        torch.set_rng_state(resume["torch_rng"])
        log.info("resuming %s at step %d with its optimizer and random states", args.resume, start)
    bce = nn.BCEWithLogitsLoss(reduction="none")
    batches = Batches(train_split, args.window, args.batch, rng)
    curve: list[dict] = []
    if resume and (args.resume.parent / "curve.json").is_file():
        curve = [p for p in json.loads((args.resume.parent / "curve.json").read_text()) if p["step"] <= start]
    best_f1 = float(resume.get("valid_f1", -1.0)) if resume else -1.0
    t0 = time.time()
    running = []

    def save(path: Path, step: int, f1: float) -> None:
        torch.save(
            {
                "state": net.state_dict(),
                "config": config,
                "step": step,
                "valid_f1": f1,
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "numpy_rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "lr_base": lr,
                "warmup": warmup,
                "sched_start": sched_start,
            },
            path,
        )

    if resume:  # the starting point is the best so far until something beats it
        best_path = args.out / "checkpoint.pt"
        prior = torch.load(best_path, weights_only=True) if best_path.is_file() else None
        if prior is not None and float(prior.get("valid_f1", -1.0)) >= best_f1:
            best_f1 = float(prior["valid_f1"])  # resuming in place: keep the run's best
        else:
            save(best_path, start, best_f1)
    for step in range(start + 1, args.steps + 1):
        net.train()
        x, onset, vel, mask = batches.next()
        logits, v = net(x)
        weight = 1.0 + (args.pos_weight - 1.0) * onset
        loss_on = (bce(logits, onset) * weight).mean()
        loss_vel = ((v - vel) ** 2 * mask).sum() / mask.sum().clamp(min=1.0)
        loss = loss_on + args.vel_weight * loss_vel
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        sched.step()
        running.append((loss_on.item(), loss_vel.item()))
        if step % args.eval_every == 0 or step == args.steps:
            preds = predict_split(net, valid_split)
            counts = score_split(preds, valid_split, np.full(N_CLASSES, 0.5))
            p, r, f = counts.micro()
            f_stem = score_split(preds, valid_split, np.full(N_CLASSES, 0.5), mixes=False).micro()[2]
            f_mix = score_split(preds, valid_split, np.full(N_CLASSES, 0.5), mixes=True).micro()[2]
            tr = np.mean(running, axis=0)
            running.clear()
            point = {
                "step": step,
                "seconds": round(time.time() - t0, 1),
                "train_onset_loss": round(float(tr[0]), 5),
                "train_velocity_loss": round(float(tr[1]), 5),
                "valid_f1": round(f, 4),
                "valid_precision": round(p, 4),
                "valid_recall": round(r, 4),
                "valid_f1_stems": round(f_stem, 4),
                "valid_f1_mixes": round(f_mix, 4),
                "lr": opt.param_groups[0]["lr"],
            }
            curve.append(point)
            log.info("%s", point)
            (args.out / "curve.json").write_text(json.dumps(curve, indent=1))
            save(args.out / "last.pt", step, f)
            if f > best_f1:
                best_f1 = f
                save(args.out / "checkpoint.pt", step, f)
        if args.max_minutes and time.time() - t0 > args.max_minutes * 60:
            log.info("time budget reached at step %d", step)
            break
    ckpt = torch.load(args.out / "checkpoint.pt", weights_only=True)
    net.load_state_dict(ckpt["state"])
    preds = predict_split(net, valid_split)
    thresholds = tune_thresholds(preds, valid_split)
    tuned = score_split(preds, valid_split, thresholds).micro()
    log.info(
        "best step %d; thresholds %s; valid F1 %.4f at 0.5, %.4f tuned",
        ckpt["step"],
        thresholds.tolist(),
        ckpt["valid_f1"],
        tuned[2],
    )
    (args.out / "thresholds.json").write_text(
        json.dumps({"thresholds": thresholds.tolist(), "valid_f1": tuned[2], "step": ckpt["step"]})
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=Path("build/drums-data"))
    parser.add_argument("--out", type=Path, default=Path("build/drums-run"))
    parser.add_argument("--steps", type=int, default=3600)
    parser.add_argument(
        "--max-minutes", type=float, default=0.0, help="stop early after this long (0: never)"
    )
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--window", type=int, default=400, help="frames per training window")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument(
        "--resume",
        type=Path,
        default=None,
        help="continue from this checkpoint (its network config wins over --width/--hidden); with its "
        "optimizer, scheduler and random states when it has them, otherwise from its weights only "
        "with a fresh AdamW at --resume-lr and a new warmup + cosine schedule up to --steps",
    )
    parser.add_argument(
        "--resume-lr",
        type=float,
        default=5e-4,
        help="peak lr (below --lr: the weights are trained) for a weights-only --resume",
    )
    parser.add_argument(
        "--fresh-optimizer",
        action="store_true",
        help="with --resume: take the checkpoint's weights only, as if it held nothing else",
    )
    parser.add_argument("--pos-weight", type=float, default=4.0)
    parser.add_argument("--vel-weight", type=float, default=1.0)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--eval-every", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy CPU)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    train(args)


if __name__ == "__main__":
    main()
