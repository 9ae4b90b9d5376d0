"""Train the transcription network on the shards of `training.transcriber.data`, resumably, on CPU.

    python -m training.transcriber.train --data build/transcriber-data --out build/transcriber \
        --shards 24 --steps 4000 --threads 1

Every step draws its batch from a random generator seeded by (seed, step), from the shards that step
may use (`shards_for_step`: a few at first, one more every `--steps-per-shard` steps, so training can
start while the generator still writes shards; a step waits for a shard it needs). A run is therefore
a pure function of its seed and data: resuming from `last.pt` (weights, optimizer, step) gives the
same next steps as an uninterrupted run. The learning rate is `--lr` until `--decay-from`, then a
cosine down to `--lr-end` at `--steps` (a function of the step alone, so a resumed run follows the
same schedule). `--resume` with `--widen W` grows the resumed net to W channels without changing
what it computes (`model.widen`) and goes on with a fresh optimizer. Every `--eval-every` steps
the whole validation file is scored (family-aware note onset F1 with fixed thresholds, and frame
F1) into `curve.json`; `best.pt` keeps the best. `--export` writes the ONNX weights with thresholds
tuned on validation.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from stemscribe.transcription.network import (
    N_FAMILIES,
    FamilyPosteriors,
    family_notes,
    network_input,
    pitch_posteriors,
    song_reference,
    spectrum_magnitudes,
)
from stemscribe.transcription.notes import DecodeOptions, NoteArrays, frame_loudness
from stemscribe.transcription.pitch_model import MIDI_OFFSET, N_PITCHES, Posteriors, frame_times
from stemscribe.transcription.timbre import TIMBRE_FAMILIES
from training.transcriber.data import load_shard
from training.transcriber.model import NoteNet, family_posteriors, widen

log = logging.getLogger(__name__)

SAMPLE_RATE = 22050
_TIMES = frame_times(np.arange(200_000))
ONSET_POS_WEIGHT = 5.0
VELOCITY_WEIGHT = 0.5
FAMILY_WEIGHT = 0.3
FIRST_SHARDS = 4


def note_frames(notes: npt.NDArray[np.float32], n_frames: int) -> tuple[np.ndarray, ...]:
    """(start frame, end frame exclusive, pitch index, velocity 0..1, family) of (n, 5) notes in range."""
    keep = (notes[:, 2] >= MIDI_OFFSET) & (notes[:, 2] < MIDI_OFFSET + N_PITCHES)
    n = notes[keep]
    times = _TIMES[: n_frames + 1]
    start = np.clip(np.searchsorted(times, n[:, 0] - 0.5 * (times[1] - times[0])), 0, n_frames - 1)
    end = np.clip(np.searchsorted(times, n[:, 1]), start + 1, n_frames)
    return start, end, (n[:, 2] - MIDI_OFFSET).astype(np.int64), n[:, 3] / 127.0, n[:, 4].astype(np.int64)


def targets(notes: npt.NDArray[np.float32], n_frames: int, lo: int, hi: int) -> tuple[np.ndarray, ...]:
    """onset, frame, velocity (hi - lo, 9, 88) float32 targets of the frames lo..hi of a clip."""
    start, end, pitch, vel, fam = note_frames(notes, n_frames)
    length = hi - lo
    onset = np.zeros((length, N_FAMILIES, N_PITCHES), np.float32)
    frame = np.zeros_like(onset)
    velocity = np.zeros_like(onset)
    for s, e, p, v, f in zip(start, end, pitch, vel, fam, strict=True):
        a, b = max(s, lo), min(e, hi)
        if a < b:
            frame[a - lo : b - lo, f, p] = 1.0
        if lo <= s < hi:
            onset[s - lo, f, p] = 1.0
            velocity[s - lo, f, p] = v
    return onset, frame, velocity


class Clips:
    """The clips of the shards a run uses, loaded on first use, with each clip's reference level."""

    def __init__(self, data: Path, files: list[int], wait: bool = True) -> None:
        self.data = data
        self.files = files  # the run's shard i is the file of shard files[i]
        self.wait = wait
        self._shards: dict[int, list[dict[str, np.ndarray]]] = {}

    def shard(self, index: int) -> list[dict[str, np.ndarray]]:
        if index not in self._shards:
            path = self.data / f"shard-{self.files[index]:05d}.npz"
            while self.wait and not path.is_file():
                log.info("waiting for %s", path)
                time.sleep(30)
            self._shards[index] = prepare(load_shard(path))
        return self._shards[index]


def prepare(clips: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    for clip in clips:
        audio = clip["audio"].astype(np.float32) / 32767.0
        clip["samples"] = audio
        n = len(clip["note"])
        clip["reference"] = np.float64(song_reference(audio, n))
    return clips


def clip_input(clip: dict[str, np.ndarray], lo: int, hi: int) -> npt.NDArray[np.float32]:
    post = Posteriors(
        clip["note"][lo:hi].astype(np.float32) / 255.0,
        clip["onset"][lo:hi].astype(np.float32) / 255.0,
        np.zeros((hi - lo, 0), np.float32),
    )
    mags = spectrum_magnitudes(clip["samples"], np.arange(lo, hi))
    return network_input(post, mags, float(clip["reference"]))


def interleaved_shards(text: str) -> list[int]:
    """Shard files from ranges such as "40-63,76-99", taken in turn (40, 76, 41, 77, ...), so that a
    run's schedule draws on every range from its first steps."""
    ranges = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        ranges.append(list(range(int(lo), int(hi or lo) + 1)))
    order = [r[i] for i in range(max(len(r) for r in ranges)) for r in ranges if i < len(r)]
    if len(set(order)) != len(order):
        raise ValueError(f"shard ranges overlap: {text}")
    return order


def shards_for_step(step: int, total_shards: int, steps_per_shard: int, base_step: int = 0) -> int:
    """How many shards (0..n-1) step `step` draws from; the schedule starts at `base_step` (a run
    continued on new shards restarts it at its resume step, so it need not wait for all of them)."""
    return min(total_shards, FIRST_SHARDS + max(0, step - base_step) // steps_per_shard)


def learning_rate(step: int, lr: float, decay_from: int, steps: int, lr_end: float) -> float:
    """`lr` up to `decay_from`, then half a cosine from `lr` to `lr_end` at `steps` (and after)."""
    if decay_from <= 0 or step <= decay_from or steps <= decay_from:
        return lr
    done = min(1.0, (step - decay_from) / (steps - decay_from))
    return lr_end + (lr - lr_end) * 0.5 * (1.0 + float(np.cos(np.pi * done)))


def batch(
    clips: Clips, step: int, args: argparse.Namespace
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng([args.seed, step])
    n_shards = shards_for_step(step, args.shards, args.steps_per_shard, args.shard_base_step)
    xs, ons, frs, vels = [], [], [], []
    for _ in range(args.batch):
        shard = clips.shard(int(rng.integers(n_shards)))
        clip = shard[int(rng.integers(len(shard)))]
        n = len(clip["note"])
        lo = int(rng.integers(0, max(1, n - args.window)))
        hi = lo + args.window
        x = clip_input(clip, lo, min(hi, n))
        o, f, v = targets(clip["notes"], n, lo, min(hi, n))
        pad = hi - min(hi, n)
        if pad:
            x = np.pad(x, ((0, 0), (0, pad), (0, 0)))
            o, f, v = (np.pad(a, ((0, pad), (0, 0), (0, 0))) for a in (o, f, v))
        xs.append(x)
        ons.append(o)
        frs.append(f)
        vels.append(v)

    def stack(arrays: list[np.ndarray]) -> torch.Tensor:  # (B, T, 9, 88) -> (B, 9, T, 88)
        return torch.from_numpy(np.stack(arrays)).permute(0, 2, 1, 3).contiguous()

    return torch.from_numpy(np.stack(xs)), stack(ons), stack(frs), stack(vels)


# What `evaluate` scores: the torch net, or a function from one (N_CHANNELS, T, 88) input to its
# (3 * 9, T, 88) posteriors, such as an exported graph's `NetworkTranscriber.run_input`.
Predictor = nn.Module | Callable[[npt.NDArray[np.float32]], npt.NDArray[np.floating]]


def predict_clip(net: Predictor, clip: dict[str, np.ndarray]) -> FamilyPosteriors:
    n = len(clip["note"])
    x = clip_input(clip, 0, n)
    if isinstance(net, nn.Module):
        device = next(net.parameters()).device
        with torch.no_grad():
            out = family_posteriors(net(torch.from_numpy(x)[None].to(device)))[0].cpu().numpy()
    else:
        out = np.asarray(net(x), np.float32)
    out = out.transpose(1, 0, 2)  # (T, 27, 88)
    return FamilyPosteriors(
        out[:, :N_FAMILIES].copy(),
        out[:, N_FAMILIES : 2 * N_FAMILIES].copy(),
        out[:, 2 * N_FAMILIES :].copy(),
    )


def _match_count(ref: np.ndarray, est: np.ndarray) -> int:
    """Onset matches (50 ms, same pitch) between (n, 3) [start, end, pitch] arrays, mir_eval's rule."""
    import mir_eval

    if len(ref) == 0 or len(est) == 0:
        return 0
    hz = lambda p: 440.0 * 2.0 ** ((p - 69.0) / 12.0)  # noqa: E731
    pairs = mir_eval.transcription.match_notes(
        ref[:, :2], hz(ref[:, 2]), est[:, :2], hz(est[:, 2]), offset_ratio=None
    )
    return len(pairs)


def _counts(decoded: NoteArrays, n_frames: int, ref: np.ndarray) -> tuple[int, int, int]:
    """(matches, reference notes, estimated notes) of decoded notes against (n, >=3) [start, end, pitch]."""
    est = np.stack(
        [_TIMES[decoded.start], _TIMES[np.minimum(decoded.end, n_frames)], decoded.pitch.astype(np.float64)],
        axis=1,
    )
    ref = ref[:, :3].astype(np.float64)
    return _match_count(ref, est), len(ref), len(est)


def evaluate(
    net: Predictor, clips: list[dict[str, np.ndarray]], thresholds: np.ndarray | None = None
) -> dict[str, float]:
    """Note onset F1 of the net on whole clips: family-aware (`note_f1`), of the families' notes with
    their family ignored (`pitch_note_f1`), of `pitch_posteriors` decoded as one part (`any_note_f1`,
    what a stem of a known family gets), and family-aware frame F1."""
    if isinstance(net, nn.Module):
        net.eval()
    th = thresholds if thresholds is not None else np.tile([0.5, 0.4], (N_FAMILIES, 1))
    tp = n_ref = n_est = 0
    tp_pitch = n_ref_pitch = n_est_pitch = 0
    tp_any = n_est_any = 0
    f_tp = f_ref = f_est = 0.0
    for clip in clips:
        fp = predict_clip(net, clip)
        n = fp.n_frames
        loud = frame_loudness(clip["samples"], n)
        notes = clip["notes"]
        _, frame_t, _ = targets(notes, n, 0, n)
        f_est_mask = fp.frame >= th[:N_FAMILIES, 1][None, :, None]
        f_tp += float((f_est_mask & (frame_t > 0)).sum())
        f_ref += float(frame_t.sum())
        f_est += float(f_est_mask.sum())
        all_est = []
        for f in range(N_FAMILIES):
            opts = DecodeOptions(onset_threshold=float(th[f, 0]), frame_threshold=float(th[f, 1]))
            decoded = family_notes(fp, f, loud, opts)
            est = np.stack(
                [_TIMES[decoded.start], _TIMES[np.minimum(decoded.end, n)], decoded.pitch.astype(np.float64)],
                axis=1,
            )
            ref = notes[notes[:, 4] == f][:, :3].astype(np.float64)
            tp += _match_count(ref, est)
            n_ref += len(ref)
            n_est += len(est)
            all_est.append(est)
        est = np.concatenate(all_est) if all_est else np.zeros((0, 3))
        ref = notes[:, :3].astype(np.float64)
        tp_pitch += _match_count(ref, est)
        n_ref_pitch += len(ref)
        n_est_pitch += len(est)
        on, fr = th[N_FAMILIES] if len(th) > N_FAMILIES else (0.5, 0.4)
        d = family_notes(pitch_posteriors(fp), 0, loud, DecodeOptions(onset_threshold=on, frame_threshold=fr))
        matched, _, estimated = _counts(d, n, notes)
        tp_any += matched
        n_est_any += estimated

    def f1(t: float, r: float, e: float) -> float:
        return 2 * t / max(r + e, 1)

    return {
        "note_f1": round(f1(tp, n_ref, n_est), 4),
        "note_precision": round(tp / max(n_est, 1), 4),
        "note_recall": round(tp / max(n_ref, 1), 4),
        "pitch_note_f1": round(f1(tp_pitch, n_ref_pitch, n_est_pitch), 4),
        "any_note_f1": round(f1(tp_any, n_ref_pitch, n_est_any), 4),
        "frame_f1": round(f1(f_tp, f_ref, f_est), 4),
    }


def tune_thresholds(net: Predictor, clips: list[dict[str, np.ndarray]]) -> np.ndarray:
    """(10, 2) (onset, frame) thresholds maximising note F1 on `clips`: rows 0-8 each family's notes,
    row 9 the notes whoever plays them (`pitch_posteriors`, for stems of a known family)."""
    if isinstance(net, nn.Module):
        net.eval()
    preds = [(predict_clip(net, c), frame_loudness(c["samples"], len(c["note"])), c["notes"]) for c in clips]
    best = np.tile([0.5, 0.4], (N_FAMILIES + 1, 1))
    for f in range(N_FAMILIES + 1):
        scores = {}
        for on in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7):
            for fr in (0.2, 0.3, 0.4, 0.5):
                tp = n_ref = n_est = 0
                opts = DecodeOptions(onset_threshold=on, frame_threshold=fr)
                for fp, loud, notes in preds:
                    d = (
                        family_notes(fp, f, loud, opts)
                        if f < N_FAMILIES
                        else (family_notes(pitch_posteriors(fp), 0, loud, opts))
                    )
                    matched, referenced, estimated = _counts(
                        d, fp.n_frames, notes[notes[:, 4] == f] if f < N_FAMILIES else notes
                    )
                    tp += matched
                    n_ref += referenced
                    n_est += estimated
                scores[(on, fr)] = 2 * tp / max(n_ref + n_est, 1)
        best[f] = max(scores, key=scores.__getitem__)
        name = TIMBRE_FAMILIES[f].value if f < N_FAMILIES else "pitch"
        log.info("%s: thresholds %s (F1 %.3f)", name, best[f].tolist(), max(scores.values()))
    return best


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    resume = torch.load(args.resume, weights_only=False) if args.resume else None
    width = int(resume["width"]) if resume else args.width
    device = torch.device(args.device)
    net = NoteNet(width).to(device)
    widened = bool(resume) and args.widen > width
    if resume:
        net.load_state_dict({k: v.to(device) for k, v in resume["state"].items()})
        if widened:  # the same function on more channels; Adam's moments start afresh
            log.info("widening the net from %d to %d channels", width, args.widen)
            width = args.widen
            net = widen(net, width).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    start = 0
    curve: list[dict] = []
    best = -1.0
    if resume:
        if not widened and "optimizer" in resume and not args.fresh_optimizer:
            opt.load_state_dict(resume["optimizer"])
        start = int(resume["step"])
        curve = [p for p in resume.get("curve", []) if p["step"] <= start]
        best = float(resume.get("best", -1.0))
        log.info("resumed %s at step %d", args.resume, start)
    log.info("NoteNet width %d: %d parameters", width, sum(p.numel() for p in net.parameters()))
    if args.shard_files:
        files = interleaved_shards(args.shard_files)
        if len(files) < args.shards:
            raise SystemExit(f"--shard-files names {len(files)} shards, fewer than --shards {args.shards}")
    else:
        files = list(range(args.first_shard, args.first_shard + args.shards))
    clips = Clips(args.data, files)
    valid = prepare(load_shard(args.data / "valid.npz"))[: args.valid_clips]
    bce = nn.BCEWithLogitsLoss(reduction="none")
    t0 = time.time()
    seen = 0.0
    running: list[tuple[float, float, float, float]] = []

    def save(path: Path, step: int) -> None:
        torch.save(
            {
                "state": net.state_dict(),
                "optimizer": opt.state_dict(),
                "step": step,
                "width": width,
                "curve": curve,
                "best": best,
                "seed": args.seed,
            },
            path,
        )

    for step in range(start + 1, args.steps + 1):
        lr = learning_rate(step, args.lr, args.decay_from, args.steps, args.lr_end)
        for group in opt.param_groups:
            group["lr"] = lr
        net.train()
        x, onset, frame, velocity = (t.to(device) for t in batch(clips, step, args))
        raw = net(x)
        onset_p = onset.amax(dim=1)  # (B, T, 88): a note starts here, whoever plays it
        frame_p = frame.amax(dim=1)
        loss_on = (bce(raw[:, 0], onset_p) * (1.0 + (ONSET_POS_WEIGHT - 1.0) * onset_p)).mean()
        loss_fr = bce(raw[:, 1], frame_p).mean()
        # Who plays it: cross-entropy over the families, where something sounds.
        share = frame / frame.sum(dim=1, keepdim=True).clamp(min=1.0)
        logp = torch.log_softmax(raw[:, 3:], dim=1)
        loss_fam = -(share * logp).sum(dim=1).sum() / frame_p.sum().clamp(min=1.0)
        vel_p = velocity.amax(dim=1)
        loss_vel = ((torch.sigmoid(raw[:, 2]) - vel_p) ** 2 * onset_p).sum() / onset_p.sum().clamp(min=1.0)
        loss = loss_on + loss_fr + FAMILY_WEIGHT * loss_fam + VELOCITY_WEIGHT * loss_vel
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        running.append((loss_on.item(), loss_fr.item(), loss_vel.item(), loss_fam.item()))
        seen += x.shape[0] * x.shape[2] * 256 / SAMPLE_RATE
        if step % args.save_every == 0:
            save(args.out / "last.pt", step)
        if step % args.eval_every == 0 or step == args.steps:
            scores = evaluate(net, valid)
            tr = np.mean(running, axis=0)
            running.clear()
            elapsed = time.time() - t0
            point = {
                "step": step,
                "seconds": round(elapsed, 1),
                "audio_s_per_s": round(seen / max(elapsed, 1e-6), 2),
                "train_onset_loss": round(float(tr[0]), 5),
                "train_frame_loss": round(float(tr[1]), 5),
                "train_velocity_loss": round(float(tr[2]), 5),
                "train_family_loss": round(float(tr[3]), 5),
                "lr": round(lr, 7),
                "shards": shards_for_step(step, args.shards, args.steps_per_shard, args.shard_base_step),
                **{f"valid_{k}": v for k, v in scores.items()},
            }
            curve.append(point)
            log.info("%s", point)
            (args.out / "curve.json").write_text(json.dumps(curve, indent=1))
            if scores["note_f1"] > best:
                best = scores["note_f1"]
                save(args.out / "best.pt", step)
            save(args.out / "last.pt", step)
        if args.max_minutes and time.time() - t0 > args.max_minutes * 60:
            log.info("time budget reached at step %d", step)
            save(args.out / "last.pt", step)
            break


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("build/transcriber-data"))
    parser.add_argument("--out", type=Path, default=Path("build/transcriber"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--window", type=int, default=256, help="frames per training crop (~3 s)")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--shards", type=int, default=24, help="shards the run draws from in the end")
    parser.add_argument("--steps-per-shard", type=int, default=150)
    parser.add_argument("--shard-base-step", type=int, default=0, help="where the shard schedule starts")
    parser.add_argument(
        "--first-shard", type=int, default=0, help="the run's shards are this one and the next --shards - 1"
    )
    parser.add_argument(
        "--shard-files",
        default="",
        help='instead of --first-shard, the shard files as ranges, e.g. "40-63,76-99", taken in turn',
    )
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument(
        "--decay-from", type=int, default=0, help="step where the cosine decay starts (0: constant lr)"
    )
    parser.add_argument("--lr-end", type=float, default=4e-5, help="lr at --steps when decaying")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="torch device (cuda on a GPU machine)")
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--save-every", type=int, default=50)
    parser.add_argument("--valid-clips", type=int, default=60)
    parser.add_argument("--max-minutes", type=float, default=0.0)
    parser.add_argument("--resume", type=Path, default=None, help="a last.pt or best.pt to continue from")
    parser.add_argument("--fresh-optimizer", action="store_true")
    parser.add_argument(
        "--widen", type=int, default=0, help="with --resume: grow the net to this width (function-preserving)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    train(args)


if __name__ == "__main__":
    main()
