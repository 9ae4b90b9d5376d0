"""Class-aware onset scoring: mir_eval onset matching (50 ms) per drum class, micro over classes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from stemscribe.result import NoteEvent
from stemscribe.transcription.drums import DRUM_CLASSES, KEY_TO_CLASS

WINDOW = 0.05


@dataclass
class Counts:
    """True positives, false positives and false negatives per class of DRUM_CLASSES."""

    tp: np.ndarray = field(default_factory=lambda: np.zeros(len(DRUM_CLASSES), np.int64))
    fp: np.ndarray = field(default_factory=lambda: np.zeros(len(DRUM_CLASSES), np.int64))
    fn: np.ndarray = field(default_factory=lambda: np.zeros(len(DRUM_CLASSES), np.int64))

    def add(self, other: Counts) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn

    @staticmethod
    def _f1(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return p, r, f

    def micro(self) -> tuple[float, float, float]:
        """Precision, recall and F1 over all classes' matches together."""
        return self._f1(float(self.tp.sum()), float(self.fp.sum()), float(self.fn.sum()))

    def per_class(self) -> dict[int, tuple[float, float, float, int]]:
        """GM pitch -> (precision, recall, F1, reference count)."""
        return {
            pitch: (
                *self._f1(float(self.tp[i]), float(self.fp[i]), float(self.fn[i])),
                int(self.tp[i] + self.fn[i]),
            )
            for i, pitch in enumerate(DRUM_CLASSES)
        }


def score_onsets(reference: Sequence[Sequence[float]], estimate: Sequence[Sequence[float]]) -> Counts:
    """Count matches per class: `reference[c]` and `estimate[c]` are onset times of class c."""
    import mir_eval

    counts = Counts()
    for c in range(len(DRUM_CLASSES)):
        ref = np.sort(np.asarray(reference[c], dtype=np.float64))
        est = np.sort(np.asarray(estimate[c], dtype=np.float64))
        matched = len(mir_eval.util.match_events(ref, est, WINDOW)) if len(ref) and len(est) else 0
        counts.tp[c] += matched
        counts.fp[c] += len(est) - matched
        counts.fn[c] += len(ref) - matched
    return counts


def onsets_by_class(notes: Iterable[NoteEvent]) -> list[list[float]]:
    """Onset times per class of DRUM_CLASSES, every drum key folded with KEY_TO_CLASS (which maps each
    class's own key to itself); keys of no class are dropped."""
    index = {pitch: i for i, pitch in enumerate(DRUM_CLASSES)}
    out: list[list[float]] = [[] for _ in DRUM_CLASSES]
    for n in notes:
        pitch = int(n.pitch)
        cls = KEY_TO_CLASS.get(pitch)
        if cls is not None:
            out[index[cls]].append(float(n.start))
    return out
