"""Scoring of transcribed notes against the benchmark's ground truth, with mir_eval.

Every metric is kept as counts (true positives, false positives, false negatives) so that items can be
summed into micro averages; F1 of one item equals what `mir_eval.transcription.precision_recall_f1_overlap`
reports for the same notes (the tests check it).

- pitched onset F1 and onset+offset F1: all non-drum notes, instruments ignored (mir_eval defaults: onsets
  within 50 ms, pitch within 50 cents, offsets within 20 % of the note or 50 ms, whichever is larger);
- drum onset F1: every drum note scored, none dropped: `drum_class` folds a GM key onto its class in the
  library's class table (`stemscribe.transcription.drums.DRUM_CLASS_TABLE`: the nine kit classes and the
  auxiliary percussion, every key 35-81 and the GS keys that sound like one) and leaves any other key its
  own class, onsets matched per class, counts summed over classes;
- instrument-aware onset F1: non-drum notes matched per instrument family, counts summed over families.

Exact unisons (same pitch, onsets within 1 ms) collapse to one note inside each matching group: two parts
playing the same note at the same time are one sound, which no transcriber can count twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from stemscribe.transcription.drums import DRUM_CLASS_NAMES, KEY_TO_CLASS, KIT_CLASSES

ONSET_TOLERANCE = 0.05
OFFSET_RATIO = 0.2
OFFSET_MIN_TOLERANCE = 0.05
UNISON_TOLERANCE = 0.001
BIAS_TOLERANCE = 0.15  # onset window of the diagnostic onset-deviation matching
MIN_DURATION = 0.001


@dataclass(frozen=True, slots=True)
class ScoredNote:
    """One note as the scoring sees it: times in seconds, family a `stemscribe.stems.Family` value."""

    pitch: int
    start: float
    end: float
    family: str
    is_drum: bool = False

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScoredNote:
        return cls(int(d["pitch"]), float(d["start"]), float(d["end"]), str(d["family"]), bool(d["is_drum"]))


@dataclass(frozen=True, slots=True)
class Counts:
    """True positives, false positives and false negatives of one matching."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def n_ref(self) -> int:
        return self.tp + self.fn

    @property
    def n_est(self) -> int:
        return self.tp + self.fp

    @property
    def precision(self) -> float:
        return self.tp / self.n_est if self.n_est else 0.0

    @property
    def recall(self) -> float:
        return self.tp / self.n_ref if self.n_ref else 0.0

    @property
    def f1(self) -> float:
        """F1 as mir_eval computes it (0 when precision and recall are both 0)."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
        }


def sum_counts(counts: Iterable[Counts]) -> Counts:
    total = Counts()
    for c in counts:
        total = total + c
    return total


def _arrays(notes: Sequence[ScoredNote]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(n, 2) onset/offset intervals and (n,) pitches in Hz, as mir_eval wants them.

    Offsets at or before their onset are moved to 1 ms after it, so that a zero-length note still scores
    on its onset.
    """
    import mir_eval.util

    if not notes:
        return np.zeros((0, 2)), np.zeros(0)
    starts = np.array([n.start for n in notes], dtype=np.float64)
    ends = np.array([n.end for n in notes], dtype=np.float64)
    ends = np.maximum(ends, starts + MIN_DURATION)
    pitches = mir_eval.util.midi_to_hz(np.array([n.pitch for n in notes], dtype=np.float64))
    return np.stack([starts, ends], axis=1), pitches


def collapse_unisons(notes: Sequence[ScoredNote], *, key: str = "pitch") -> list[ScoredNote]:
    """Drop notes repeating a kept note's `key` value with an onset within 1 ms; keep the longest."""
    out: list[ScoredNote] = []
    last: dict[int, ScoredNote] = {}
    for n in sorted(notes, key=lambda n: (n.start, -(n.end - n.start))):
        k = getattr(n, key)
        prev = last.get(k)
        if prev is not None and n.start - prev.start <= UNISON_TOLERANCE:
            continue
        last[k] = n
        out.append(n)
    return out


def match_notes(
    ref: Sequence[ScoredNote], est: Sequence[ScoredNote], *, with_offsets: bool = False
) -> Counts:
    """Match notes by onset and pitch (and offset if asked) with mir_eval's defaults; return the counts."""
    import mir_eval.transcription

    ref = collapse_unisons(ref)
    est = collapse_unisons(est)
    if not ref or not est:
        return Counts(0, len(est), len(ref))
    ref_iv, ref_hz = _arrays(ref)
    est_iv, est_hz = _arrays(est)
    matching = mir_eval.transcription.match_notes(
        ref_iv,
        ref_hz,
        est_iv,
        est_hz,
        onset_tolerance=ONSET_TOLERANCE,
        offset_ratio=OFFSET_RATIO if with_offsets else None,
        offset_min_tolerance=OFFSET_MIN_TOLERANCE,
    )
    tp = len(matching)
    return Counts(tp, len(est) - tp, len(ref) - tp)


def onset_deviations(ref: Sequence[ScoredNote], est: Sequence[ScoredNote]) -> list[float]:
    """Estimated minus reference onset (seconds) of the notes matched by pitch within 150 ms.

    A diagnostic, not a score: a median far from 0 means onsets come systematically late or early (slow
    attacks, a frame offset), which the 50 ms window of the F1 scores punishes.
    """
    import mir_eval.transcription

    ref = collapse_unisons(ref)
    est = collapse_unisons(est)
    if not ref or not est:
        return []
    ref_iv, ref_hz = _arrays(ref)
    est_iv, est_hz = _arrays(est)
    matching = mir_eval.transcription.match_notes(
        ref_iv, ref_hz, est_iv, est_hz, onset_tolerance=BIAS_TOLERANCE, offset_ratio=None
    )
    return [float(est_iv[j, 0] - ref_iv[i, 0]) for i, j in matching]


def match_onsets(ref_times: Sequence[float], est_times: Sequence[float]) -> Counts:
    """Match onset times one to one within 50 ms (mir_eval's note-onset matching); return the counts."""
    import mir_eval.transcription

    if not len(ref_times) or not len(est_times):
        return Counts(0, len(est_times), len(ref_times))
    ref_iv = np.stack([np.asarray(ref_times, float), np.asarray(ref_times, float) + MIN_DURATION], axis=1)
    est_iv = np.stack([np.asarray(est_times, float), np.asarray(est_times, float) + MIN_DURATION], axis=1)
    matching = mir_eval.transcription.match_note_onsets(ref_iv, est_iv, onset_tolerance=ONSET_TOLERANCE)
    tp = len(matching)
    return Counts(tp, len(est_times) - tp, len(ref_times) - tp)


# The drum class table: GM key -> class key (the class's own GM key), the library's (training, inference
# and scoring share it); the kit classes' names, and every class's.
DRUM_CLASS_TABLE: dict[int, int] = KEY_TO_CLASS
KIT_CLASS_NAMES: dict[int, str] = {k: DRUM_CLASS_NAMES[k] for k in KIT_CLASSES}
CLASS_NAMES: dict[int, str] = DRUM_CLASS_NAMES


def drum_class(key: int) -> int:
    """The class a drum key is scored as: its class in DRUM_CLASS_TABLE, or the key itself (its own class).

    A reference key with a class matches estimates of that class (35 and 36 are both the kick, 69 and 70
    both the shaker); a key of no class (GS keys such as 28, slap) is matched only by the same key.
    """
    return DRUM_CLASS_TABLE.get(key, key)


def is_kit_class(cls: int) -> bool:
    """True for the kit classes of KIT_CLASS_NAMES, False for a key that is its own class."""
    return cls in KIT_CLASS_NAMES


def drum_class_name(cls: int) -> str:
    """A class's name from the class table, else the key's GM percussion name ("key N" past 35-81)."""
    if cls in CLASS_NAMES:
        return CLASS_NAMES[cls]
    import pretty_midi

    name = str(pretty_midi.note_number_to_drum_name(cls)) if 0 <= cls <= 127 else ""
    return name.lower() if name else f"key {cls}"


def fold_drums(notes: Sequence[ScoredNote]) -> list[ScoredNote]:
    """The drum notes, each with its GM key replaced by its class (`drum_class`); none is dropped."""
    return [ScoredNote(drum_class(n.pitch), n.start, n.end, n.family, True) for n in notes if n.is_drum]


def drum_counts_by_class(ref: Sequence[ScoredNote], est: Sequence[ScoredNote]) -> dict[int, Counts]:
    """Onset counts per drum class present on either side (see `drum_class`), in class order."""
    ref_f = collapse_unisons(fold_drums(ref))
    est_f = collapse_unisons(fold_drums(est))
    out: dict[int, Counts] = {}
    for cls in sorted({n.pitch for n in ref_f} | {n.pitch for n in est_f}):
        r = [n.start for n in ref_f if n.pitch == cls]
        e = [n.start for n in est_f if n.pitch == cls]
        out[cls] = match_onsets(r, e)
    return out


def kit_and_aux(classes: dict[int, Counts]) -> tuple[Counts, Counts]:
    """Per-class counts summed over the kit classes and over the other keys (auxiliary percussion)."""
    kit = sum_counts(c for k, c in classes.items() if is_kit_class(k))
    aux = sum_counts(c for k, c in classes.items() if not is_kit_class(k))
    return kit, aux


def family_counts(ref: Sequence[ScoredNote], est: Sequence[ScoredNote]) -> dict[str, Counts]:
    """Onset counts per instrument family over the non-drum notes: a note only matches within its family."""
    ref_p = [n for n in ref if not n.is_drum]
    est_p = [n for n in est if not n.is_drum]
    families = sorted({n.family for n in ref_p} | {n.family for n in est_p})
    return {
        f: match_notes([n for n in ref_p if n.family == f], [n for n in est_p if n.family == f])
        for f in families
    }


@dataclass(slots=True)
class ItemScore:
    """All counts of one system on one item.

    `pitched`, `pitched_offset` and `instrument` are None where the reference has no pitched notes, and
    `drums` is None where it has no drum notes: such items are left out of that metric's aggregates.
    """

    pitched: Counts | None
    pitched_offset: Counts | None
    instrument: Counts | None
    drums: Counts | None
    drum_classes: dict[int, Counts] = field(default_factory=dict)
    families: dict[str, Counts] = field(default_factory=dict)
    deviations: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        def c(x: Counts | None) -> dict[str, Any] | None:
            return None if x is None else x.to_dict()

        return {
            "pitched_onset": c(self.pitched),
            "pitched_onset_offset": c(self.pitched_offset),
            "instrument_onset": c(self.instrument),
            "drums_class": c(self.drums),
            "drum_classes": _class_dict(self.drum_classes),
            "families": {k: v.to_dict() for k, v in self.families.items()},
            "onset_deviation_ms": _percentiles_ms(self.deviations),
        }


def _class_dict(classes: dict[int, Counts]) -> dict[str, dict[str, Any]]:
    """Per-class counts keyed "name (key)", e.g. "kick (36)", "tambourine (54)"."""
    return {f"{drum_class_name(k)} ({k})": v.to_dict() for k, v in sorted(classes.items())}


def _percentiles_ms(deviations: Sequence[float]) -> dict[str, float] | None:
    """10th, 50th and 90th percentile of onset deviations, in milliseconds."""
    if not deviations:
        return None
    p10, p50, p90 = np.percentile(np.asarray(deviations) * 1000, [10, 50, 90])
    return {"p10": round(float(p10), 1), "median": round(float(p50), 1), "p90": round(float(p90), 1)}


def score_item(ref: Sequence[ScoredNote], est: Sequence[ScoredNote]) -> ItemScore:
    """Score one system's notes against one item's reference notes."""
    ref_pitched = [n for n in ref if not n.is_drum]
    est_pitched = [n for n in est if not n.is_drum]
    has_pitched = bool(ref_pitched)
    has_drums = any(n.is_drum for n in ref)

    pitched = match_notes(ref_pitched, est_pitched) if has_pitched else None
    pitched_offset = match_notes(ref_pitched, est_pitched, with_offsets=True) if has_pitched else None
    families = family_counts(ref, est) if has_pitched else {}
    instrument = sum_counts(families.values()) if has_pitched else None
    drum_classes = drum_counts_by_class(ref, est) if has_drums else {}
    drums = sum_counts(drum_classes.values()) if has_drums else None
    deviations = onset_deviations(ref_pitched, est_pitched) if has_pitched else []
    return ItemScore(pitched, pitched_offset, instrument, drums, drum_classes, families, deviations)


METRICS: tuple[str, ...] = ("pitched", "pitched_offset", "drums", "instrument")


@dataclass(slots=True)
class Aggregate:
    """Micro (summed counts) and mean-per-item F1 of each metric over a group of items."""

    micro: dict[str, Counts | None]
    mean: dict[str, float | None]
    n_items: dict[str, int]
    drum_classes: dict[int, Counts]
    deviations: list[float] = field(default_factory=list)

    @property
    def onset_deviation_ms(self) -> dict[str, float] | None:
        return _percentiles_ms(self.deviations)

    def to_dict(self) -> dict[str, Any]:
        return {
            "onset_deviation_ms": self.onset_deviation_ms,
            "micro": {k: (None if v is None else v.to_dict()) for k, v in self.micro.items()},
            "mean_f1": {k: (None if v is None else round(v, 4)) for k, v in self.mean.items()},
            "n_items": dict(self.n_items),
            "drum_classes": _class_dict(self.drum_classes),
        }


def aggregate(scores: Sequence[ItemScore]) -> Aggregate:
    """Sum counts over items (micro) and average per-item F1 (mean), metric by metric."""
    micro: dict[str, Counts | None] = {}
    mean: dict[str, float | None] = {}
    n_items: dict[str, int] = {}
    for metric in METRICS:
        present = [c for s in scores if (c := getattr(s, metric)) is not None]
        n_items[metric] = len(present)
        micro[metric] = sum_counts(present) if present else None
        mean[metric] = float(np.mean([c.f1 for c in present])) if present else None
    classes: dict[int, Counts] = {}
    for s in scores:
        for k, c in s.drum_classes.items():
            classes[k] = classes.get(k, Counts()) + c
    classes = dict(sorted(classes.items()))
    deviations = [d for s in scores for d in s.deviations]
    return Aggregate(micro, mean, n_items, classes, deviations)
