"""Choose how a mix's network notes get their families, on the dev split's mixes only; the held-out
split's figures of every setting are printed beside them and never used to choose.

    python -m training.transcriber.tune_mix [--weights stemscribe/weights/transcriber.onnx]

Each benchmark mix (`bench/data`, `bench/data-heldout/*`, built by `python -m bench.build`) goes once
through `Transcriber(engine="network").mix_notes` (the pitch model, the network and the timbre
classifier, as the pipeline runs them on a mix); then every setting of the grid reassigns the cached
notes and is scored by the benchmark's instrument-aware onset F1 (micro; drums are the drum model's
and not scored here):
`FAMILY_BLEND` (`network.note_families`), the neighbourhood the classifier's per-note estimates are
averaged over (`roles.smooth_family_probs`: `FAMILY_WINDOW` frames, and with a pitch window only notes
that near in register), and `MIN_FAMILY_NOTES`. One row per setting, best dev first.
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench.build import DATA_DIR, HELDOUT_DIR
from bench.dataset import load_items
from bench.score import Counts, ScoredNote, family_counts, sum_counts
from stemscribe.audio import load_audio
from stemscribe.transcription.network import note_families
from stemscribe.transcription.notes import to_events
from stemscribe.transcription.pipeline import FAMILY_WINDOW, Transcriber
from stemscribe.transcription.pitch_model import SAMPLE_RATE
from stemscribe.transcription.roles import smooth_family_probs
from stemscribe.transcription.timbre import TIMBRE_FAMILIES

BLENDS = (0.2, 0.3, 0.4, 0.5)
WINDOWS = (0, FAMILY_WINDOW // 2, FAMILY_WINDOW, 2 * FAMILY_WINDOW)  # frames; 0: no averaging
PITCH_WINDOWS = (None, 2, 3, 4, 6, 9)  # semitones; None: every note in the time window
MIN_NOTES = (3, 8, 16)


@dataclass
class Cached:
    group: str
    pitch: npt.NDArray[np.int64]
    start_frame: npt.NDArray[np.int64]
    start: npt.NDArray[np.float64]
    end: npt.NDArray[np.float64]
    shares: npt.NDArray[np.float32]
    heard: npt.NDArray[np.float32]  # the classifier's, per note, not averaged
    reference: list[ScoredNote]


def cache_mix(group: str, path: Path, reference: list[ScoredNote], transcriber: Transcriber) -> Cached:
    """One mix through the pipeline's network path up to the family choice (`Transcriber.mix_notes`)."""
    mono = load_audio(path, sr=SAMPLE_RATE, mono=True).samples
    mix = transcriber.mix_notes(mono)
    events = to_events(mix.notes)
    n_families = len(TIMBRE_FAMILIES)
    return Cached(
        group,
        mix.notes.pitch.astype(np.int64),
        mix.notes.start.astype(np.int64),
        np.array([e.start for e in events]),
        np.array([e.end for e in events]),
        mix.shares,
        mix.heard if mix.heard is not None else np.zeros((0, n_families), np.float32),
        reference,
    )


def score(
    items: list[Cached], blend: float, window: int, pitch_window: int | None, min_notes: int
) -> dict[str, Counts]:
    by_group: dict[str, list[Counts]] = {}
    for item in items:
        heard = smooth_family_probs(
            item.heard,
            item.start_frame,
            window,
            None if pitch_window is None else item.pitch,
            pitch_window or 0,
        )
        who = note_families(item.shares, heard, blend=blend).argmax(axis=1)
        counts = np.bincount(who, minlength=len(TIMBRE_FAMILIES))
        est = [
            ScoredNote(int(p), float(s), float(e), TIMBRE_FAMILIES[k].value)
            for p, s, e, k in zip(item.pitch, item.start, item.end, who, strict=True)
            if counts[k] >= min_notes
        ]
        by_group.setdefault(item.group, []).append(sum_counts(family_counts(item.reference, est).values()))
    return {g: sum_counts(c) for g, c in by_group.items()}


def network_transcriber(doc: str, argv: list[str] | None) -> Transcriber:
    """The network engine a tuning script runs, from its command line (`--weights`, `--threads`)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    return Transcriber(engine="network", network_weights=args.weights, threads=args.threads)


def bench_folders() -> dict[str, Path]:
    """The benchmark's splits a tuning script reads: "dev" (chosen on) and "heldout-FONT" (printed beside)."""
    return {
        "dev": DATA_DIR,
        **{f"heldout-{p.name}": p for p in sorted(HELDOUT_DIR.iterdir()) if p.is_dir()},
    }


def main(argv: list[str] | None = None) -> None:
    transcriber = network_transcriber(__doc__, argv)
    if transcriber.family_model is None:
        raise SystemExit("tune_mix needs the timbre classifier's weights (stemscribe/weights/timbre.onnx)")
    folders = bench_folders()
    items = [
        cache_mix(group, item.audio, item.reference(), transcriber)
        for group, folder in folders.items()
        for item in load_items(folder)
        if item.is_mix
    ]
    rows = []
    for setting in itertools.product(BLENDS, WINDOWS, PITCH_WINDOWS, MIN_NOTES):
        if setting[1] == 0 and setting[2] is not None:
            continue
        f1 = {g: c.f1 for g, c in score(items, *setting).items()}
        rows.append((setting, f1))
    rows.sort(key=lambda r: -r[1]["dev"])
    groups = list(folders)
    print("blend window pitch_window min_notes " + " ".join(groups))
    for (blend, window, pitch_window, min_notes), f1 in rows:
        pw = "-" if pitch_window is None else str(pitch_window)
        print(f"{blend:5.2f} {window:6d} {pw:>12} {min_notes:9d} " + " ".join(f"{f1[g]:.3f}" for g in groups))


if __name__ == "__main__":
    main()
