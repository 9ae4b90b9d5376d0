"""Choose how a mix's network notes get their families, on the dev split's mixes only; the held-out
split's figures of every setting are printed beside them and never used to choose.

    python -m training.transcriber.tune_mix [--weights stemscribe/weights/transcriber.onnx]

Each benchmark mix (`bench/data`, `bench/data-heldout/*`, built by `python -m bench.build`) goes once
through the pitch model, the network and the timbre classifier, as `Transcriber(engine="network")`
runs them; then every (`FAMILY_BLEND`, `SONG_PRIOR`, `MIN_FAMILY_NOTES`) of the grid reassigns the
cached notes (`network.note_families`) and is scored by the benchmark's instrument-aware onset F1
(micro, drums left to the drum model and not scored here). Prints one row per setting, best dev first.
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
from stemscribe.transcription.network import (
    NetworkTranscriber,
    family_notes,
    note_families,
    note_family_shares,
    pitch_posteriors,
)
from stemscribe.transcription.notes import DecodeOptions, frame_loudness, to_events
from stemscribe.transcription.pipeline import FAMILY_WINDOW
from stemscribe.transcription.pitch_model import SAMPLE_RATE, PitchModel
from stemscribe.transcription.roles import smooth_family_probs
from stemscribe.transcription.timbre import TIMBRE_FAMILIES, FamilyClassifier

BLENDS = (0.3, 0.4, 0.5, 0.6, 0.7)
PRIORS = (0.0, 0.5, 1.0, 1.5, 2.0)
MIN_NOTES = (3, 8, 16)


@dataclass
class Cached:
    group: str
    pitch: npt.NDArray[np.int64]
    start: npt.NDArray[np.float64]
    end: npt.NDArray[np.float64]
    shares: npt.NDArray[np.float32]
    heard: npt.NDArray[np.float32]
    reference: list[ScoredNote]


def cache_mix(
    path: Path, pitch: PitchModel, network: NetworkTranscriber, classifier: FamilyClassifier
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64], np.ndarray, np.ndarray]:
    mono = load_audio(path, sr=SAMPLE_RATE, mono=True).samples
    post = pitch.run(mono, contour=False)
    loud = frame_loudness(mono, post.n_frames)
    fp = network.posteriors(mono, post)
    onset, frame = network.thresholds()["pitch"]
    notes = family_notes(
        pitch_posteriors(fp), 0, loud, DecodeOptions(onset_threshold=onset, frame_threshold=frame)
    )
    events = to_events(notes)
    shares = note_family_shares(fp, notes)
    heard = smooth_family_probs(classifier.classify(mono, events), notes.start, FAMILY_WINDOW)
    return (
        np.array([e.pitch for e in events], np.int64),
        np.array([e.start for e in events]),
        np.array([e.end for e in events]),
        shares,
        heard,
    )


def score(items: list[Cached], blend: float, prior: float, min_notes: int) -> dict[str, Counts]:
    by_group: dict[str, list[Counts]] = {}
    for item in items:
        who = note_families(item.shares, item.heard, blend=blend, song_prior=prior).argmax(axis=1)
        counts = np.bincount(who, minlength=len(TIMBRE_FAMILIES))
        est = [
            ScoredNote(int(p), float(s), float(e), TIMBRE_FAMILIES[k].value)
            for p, s, e, k in zip(item.pitch, item.start, item.end, who, strict=True)
            if counts[k] >= min_notes
        ]
        by_group.setdefault(item.group, []).append(sum_counts(family_counts(item.reference, est).values()))
    return {g: sum_counts(c) for g, c in by_group.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    pitch = PitchModel(threads=args.threads)
    network = NetworkTranscriber(args.weights, threads=args.threads)
    classifier = FamilyClassifier(threads=args.threads)
    folders = {
        "dev": DATA_DIR,
        **{f"heldout-{p.name}": p for p in sorted(HELDOUT_DIR.iterdir()) if p.is_dir()},
    }
    items: list[Cached] = []
    for group, folder in folders.items():
        for item in load_items(folder):
            if item.is_mix:
                cached = cache_mix(item.audio, pitch, network, classifier)
                items.append(Cached(group, *cached, item.reference()))
        print(f"{group}: {sum(i.group == group for i in items)} mixes", flush=True)
    rows = []
    for blend, prior, min_notes in itertools.product(BLENDS, PRIORS, MIN_NOTES):
        f1 = {g: c.f1 for g, c in score(items, blend, prior, min_notes).items()}
        rows.append((f1["dev"], blend, prior, min_notes, f1))
    rows.sort(key=lambda r: -r[0])
    groups = list(folders)
    print("blend prior min_notes " + " ".join(groups))
    for _, blend, prior, min_notes, f1 in rows:
        print(f"{blend:5.2f} {prior:5.2f} {min_notes:9d} " + " ".join(f"{f1[g]:.3f}" for g in groups))


if __name__ == "__main__":
    main()
