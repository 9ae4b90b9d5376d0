"""Tune the drum model's per-class peak thresholds for drum stems and for mixes, on dev benchmark songs.

    python -m training.drums.tune_thresholds --data bench/data bench-dev7 bench-dev11 \\
        --report build/drum-thresholds.json [--write stemscribe/weights/drums.onnx]

What the network hears is recorded from the pipeline itself: every drum stem and every mix of the
given dev folders goes through `stemscribe.Transcriber` with a drum backend that keeps the audio it is
handed (a drum stem's signal, a mix's percussive part) and the network's activations are computed once
per item. Each input kind then gets its own thresholds by coordinate ascent from the weights' current
ones, over a coarse grid, scored as `bench.score` scores drums (class-aware onset F1, mir_eval 50 ms,
every key, micro over the items with reference drums). A change is kept only when it raises the kind's
F1 over all folders by at least `--margin`, lowers on no single folder either that F1 or the class's
own F1 (the pooled F1 alone rewards extra hits of a precise class even where that class's F1 falls),
and its class has at least `--min-onsets` reference onsets, half that many in each of `--min-songs`
items or more (one tom-heavy song moved the toms' thresholds, and held-out songs without toms paid in
false positives); passes repeat until nothing changes. The tuning starts from the weights' current
thresholds: run it on weights whose thresholds are the ones to start from.

`--write` rewrites the weights' metadata in place ("thresholds" for stems, "thresholds_mix" for mixes;
the graph is untouched) and its sha256 sidecar. Held-out folders (manifest split "heldout") are refused:
they are for evaluation only (`python -m bench.run`).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench.dataset import Item, load_items
from bench.score import Counts, ScoredNote, drum_counts_by_class, kit_and_aux, sum_counts
from stemscribe.result import NoteEvent
from stemscribe.transcription.drum_model import SAMPLE_RATE, THRESHOLD_KEYS, DrumModel, default_weights_path
from stemscribe.transcription.drums import DRUM_CLASS_NAMES, DRUM_INPUTS, DrumInput
from stemscribe.transcription.weights import write_weights

log = logging.getLogger(__name__)
GRID: tuple[float, ...] = tuple(float(x) for x in np.round(np.arange(0.15, 0.86, 0.05), 2))
ITEM_KIND: dict[str, DrumInput] = {"drums": "stem", "mix": "mix"}


class _Recorder:
    """A drum backend that keeps what the pipeline hands it and writes no notes."""

    name = "recorder"

    def __init__(self) -> None:
        self.heard: list[tuple[npt.NDArray[np.float32], int, DrumInput]] = []

    def transcribe(
        self, samples: npt.NDArray[np.float32], sr: int, *, kind: DrumInput = "stem"
    ) -> list[NoteEvent]:
        self.heard.append((np.array(samples, dtype=np.float32), sr, kind))
        return []


@dataclass
class Cached:
    """One dev item: the network's outputs on what the pipeline fed it, and the item's reference."""

    folder: str
    item: str
    kind: DrumInput
    duration: float
    onset: npt.NDArray[np.float32]  # (n_frames, n_classes)
    velocity: npt.NDArray[np.float32]
    reference: list[ScoredNote] = field(repr=False)


def record_inputs(items: Sequence[Item]) -> list[tuple[Item, npt.NDArray[np.float32], DrumInput, float]]:
    """(item, the samples the drum backend got, their kind, the result's duration) per item, through
    the pipeline exactly as `bench.run --engine network` calls it."""
    from stemscribe import Transcriber

    transcriber = Transcriber(engine="network", threads=1)
    recorder = _Recorder()
    transcriber._drums = recorder  # the seam the pipeline builds its drum backend into
    out = []
    for item in items:
        recorder.heard.clear()
        result = transcriber.transcribe(item.audio, stem=item.stem)
        (samples, sr, kind), *more = recorder.heard
        if more or sr != SAMPLE_RATE or kind != ITEM_KIND[item.stem]:
            raise RuntimeError(
                f"{item.id}: the pipeline fed the drums {len(recorder.heard)}x, {sr} Hz, {kind}"
            )
        out.append((item, samples, kind, float(result.duration)))
    return out


def cache_activations(folders: Sequence[Path], weights: Path, cache: Path | None) -> list[Cached]:
    """Every drum stem and every mix with reference drums of `folders`, with its activations (read
    from `cache` when it holds those of the same folders and weights)."""
    key = {"folders": [str(f) for f in folders], "weights": str(weights.resolve())}
    if cache is not None and cache.is_file():
        data = np.load(cache, allow_pickle=False)
        meta = json.loads(str(data["meta"]))
        if {k: meta[k] for k in key} == key:
            return [_cached_from(meta, data, i) for i in range(len(meta["items"]))]
        log.info("cache %s is of other folders or weights: recomputing", cache)
    model = DrumModel(weights)
    cached: list[Cached] = []
    for folder in folders:
        manifest = json.loads((folder / "manifest.json").read_text())
        if manifest.get("split") != "dev":
            raise SystemExit(f"{folder} is split {manifest.get('split')!r}: thresholds tune on dev only")
        items = [i for i in load_items(folder) if i.stem in ITEM_KIND]
        items = [i for i in items if any(n.is_drum for n in i.reference())]
        log.info(
            "%s: %d drum stems, %d mixes",
            folder,
            sum(i.stem == "drums" for i in items),
            sum(i.stem == "mix" for i in items),
        )
        for item, samples, kind, duration in record_inputs(items):
            onset, velocity = model.activations(samples, SAMPLE_RATE)
            cached.append(Cached(str(folder), item.id, kind, duration, onset, velocity, item.reference()))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        meta = {**key, "items": [[c.folder, c.item, c.kind, c.duration] for c in cached]}
        arrays = {f"onset{i}": c.onset for i, c in enumerate(cached)}
        arrays.update({f"velocity{i}": c.velocity for i, c in enumerate(cached)})
        np.savez_compressed(cache, meta=json.dumps(meta), **arrays)
    return cached


def _cached_from(meta: dict, data: np.lib.npyio.NpzFile, i: int) -> Cached:
    folder, item_id, kind, duration = meta["items"][i]
    item = next(it for it in load_items(Path(folder)) if it.id == item_id)
    return Cached(
        folder, item_id, kind, float(duration), data[f"onset{i}"], data[f"velocity{i}"], item.reference()
    )


def decode(weights: Path, c: Cached, thresholds: Sequence[float]) -> list[ScoredNote]:
    """The notes the pipeline writes for `c` with `thresholds`: picked peaks, clipped to the audio
    (the pipeline's own `_instrument` and `_clip`)."""
    from stemscribe.stems import Family
    from stemscribe.transcription.pipeline import _clip, _instrument

    tuned = DrumModel(weights, thresholds=tuple(thresholds))  # the session is loaded once and shared
    inst = _clip(_instrument(Family.DRUMS, tuned.notes_from_activations(c.onset, c.velocity)), c.duration)
    return [ScoredNote(n.pitch, n.start, n.end, "drums", True) for n in inst.notes]


def count_table(weights: Path, n_classes: int, cached: Sequence[Cached], values: Sequence[float]) -> dict:
    """(folder, class) -> threshold -> Counts, summed over the items: one decode per threshold value
    (a class's counts depend on its own threshold alone)."""
    table: dict[tuple[str, int], dict[float, Counts]] = {}
    for value in values:
        for c in cached:
            notes = decode(weights, c, [value] * n_classes)
            for cls, counts in drum_counts_by_class(c.reference, notes).items():
                slot = table.setdefault((c.folder, cls), {})
                slot[value] = slot.get(value, Counts()) + counts
    return table


def totals(
    table: dict, classes: Sequence[int], thresholds: Sequence[float], folder: str | None = None
) -> dict[int, Counts]:
    """Class (every key present, classes of the model at their threshold) -> Counts, over one folder
    or all."""
    index = {k: i for i, k in enumerate(classes)}
    out: dict[int, Counts] = {}
    for (f, cls), by_value in table.items():
        if folder is not None and f != folder:
            continue
        value = thresholds[index[cls]] if cls in index else next(iter(by_value))
        out[cls] = out.get(cls, Counts()) + by_value.get(value, Counts())  # absent: no onset either side
    return out


def micro(classes: dict[int, Counts]) -> Counts:
    return sum_counts(classes.values())


def _folder_f1s(
    table: dict, classes: Sequence[int], thresholds: Sequence[float], folder: str, cls: int
) -> tuple[float, float]:
    """One folder's F1 over every class, and of class `cls` alone."""
    per = totals(table, classes, thresholds, folder)
    return micro(per).f1, per.get(cls, Counts()).f1


def tunable_classes(cached: Sequence[Cached], *, min_onsets: int, min_songs: int) -> set[int]:
    """Classes with at least `min_onsets` reference onsets in `cached`, at least half that many in
    each of `min_songs` items or more: a threshold is not moved on one song's evidence."""
    from bench.score import drum_class

    per_item: dict[int, list[int]] = {}
    for c in cached:
        keys = [drum_class(n.pitch) for n in c.reference if n.is_drum]
        for cls in set(keys):
            per_item.setdefault(cls, []).append(keys.count(cls))
    return {
        cls
        for cls, counts in per_item.items()
        if sum(counts) >= min_onsets and sum(n >= min_onsets / 2 for n in counts) >= min_songs
    }


def coordinate_ascent(
    table: dict,
    classes: Sequence[int],
    start: Sequence[float],
    folders: Sequence[str],
    *,
    margin: float,
    tunable: set[int],
    max_passes: int = 4,
) -> tuple[list[float], list[dict]]:
    """Thresholds from `start`, those of the `tunable` classes moved one at a time over GRID (see
    the module docstring's rule); returns them and the accepted moves."""
    current = list(start)
    moves: list[dict] = []
    for _ in range(max_passes):
        changed = False
        for i, cls in enumerate(classes):
            if cls not in tunable:
                continue
            base = micro(totals(table, classes, current)).f1
            base_per = [_folder_f1s(table, classes, current, f, cls) for f in folders]
            best: tuple[float, float] | None = None
            for value in GRID:
                trial = [*current[:i], value, *current[i + 1 :]]
                f1 = micro(totals(table, classes, trial)).f1
                if f1 < base + margin or (best is not None and f1 <= best[1]):
                    continue
                per = [_folder_f1s(table, classes, trial, f, cls) for f in folders]
                falls = [
                    new < old - 1e-12
                    for now, was in zip(per, base_per, strict=True)
                    for new, old in zip(now, was, strict=True)
                ]
                if any(falls):
                    continue  # some folder's F1, or its F1 of this class, would fall
                best = (value, f1)
            if best is not None:
                moves.append(
                    {
                        "class": DRUM_CLASS_NAMES[cls],
                        "from": current[i],
                        "to": best[0],
                        "f1_from": round(base, 4),
                        "f1_to": round(best[1], 4),
                    }
                )
                log.info(
                    "  %s %.2f -> %.2f: F1 %.4f -> %.4f",
                    DRUM_CLASS_NAMES[cls],
                    current[i],
                    best[0],
                    base,
                    best[1],
                )
                current[i] = best[0]
                changed = True
        if not changed:
            break
    return current, moves


def summary(table: dict, classes: Sequence[int], thresholds: Sequence[float], folders: Sequence[str]) -> dict:
    """All / kit / aux F1 over every folder and per folder, and per class (reference onsets, P, R, F1)."""

    def figures(per: dict[int, Counts]) -> dict:
        kit, aux = kit_and_aux(per)
        return {"all": round(micro(per).f1, 4), "kit": round(kit.f1, 4), "aux": round(aux.f1, 4)}

    everything = totals(table, classes, thresholds)
    return {
        **figures(everything),
        "folders": {f: figures(totals(table, classes, thresholds, f)) for f in folders},
        "classes": {
            DRUM_CLASS_NAMES.get(k, f"key {k}"): {
                "onsets": c.n_ref,
                "tp": c.tp,
                "fp": c.n_est - c.tp,
                "fn": c.n_ref - c.tp,
                "precision": round(c.precision, 4),
                "recall": round(c.recall, 4),
                "f1": round(c.f1, 4),
            }
            for k, c in sorted(everything.items())
        },
    }


def write_metadata(path: Path, thresholds: dict[DrumInput, Sequence[float]]) -> str:
    """Rewrite the weights' per-kind thresholds in place (graph untouched) and their sha256."""
    import onnx

    model = onnx.load(str(path))
    for kind, values in thresholds.items():
        key = THRESHOLD_KEYS[kind]
        text = json.dumps([float(v) for v in values])
        entry = next((p for p in model.metadata_props if p.key == key), None)
        if entry is None:
            entry = model.metadata_props.add()
            entry.key = key
        entry.value = text
    onnx.checker.check_model(model)
    return write_weights(path, model.SerializeToString())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, nargs="+", required=True, help="dev benchmark folders")
    parser.add_argument("--weights", type=Path, default=default_weights_path())
    parser.add_argument("--cache", type=Path, default=Path("build/drum-activations.npz"))
    parser.add_argument("--margin", type=float, default=0.002, help="least F1 gain a change must bring")
    parser.add_argument("--min-onsets", type=int, default=20, help="least reference onsets of a tuned class")
    parser.add_argument(
        "--min-songs",
        type=int,
        default=2,
        help="least songs (items) holding half of --min-onsets each, for a class to be tuned",
    )
    parser.add_argument("--report", type=Path, default=None, help="write the tuning's figures here (JSON)")
    parser.add_argument("--write", type=Path, default=None, help="rewrite these weights' thresholds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    model = DrumModel(args.weights)
    cached = cache_activations(args.data, args.weights, args.cache)
    folders = [str(f) for f in args.data]
    report: dict = {
        "folders": folders,
        "grid": list(GRID),
        "margin": args.margin,
        "min_onsets": args.min_onsets,
        "min_songs": args.min_songs,
        "kinds": {},
    }
    tuned: dict[DrumInput, list[float]] = {}
    for kind in DRUM_INPUTS:
        items = [c for c in cached if c.kind == kind]
        start = list(model.thresholds_for(kind))
        log.info("%s: %d items; tuning from %s", kind, len(items), start)
        table = count_table(args.weights, len(model.classes), items, sorted({*GRID, *start}))
        tunable = tunable_classes(items, min_onsets=args.min_onsets, min_songs=args.min_songs)
        tuned[kind], moves = coordinate_ascent(
            table, model.classes, start, folders, margin=args.margin, tunable=tunable
        )
        report["kinds"][kind] = {
            "items": len(items),
            "tunable": [DRUM_CLASS_NAMES[k] for k in model.classes if k in tunable],
            "start": start,
            "tuned": tuned[kind],
            "moves": moves,
            "before": summary(table, model.classes, start, folders),
            "after": summary(table, model.classes, tuned[kind], folders),
        }
        log.info(
            "%s: F1 %.4f -> %.4f",
            kind,
            report["kinds"][kind]["before"]["all"],
            report["kinds"][kind]["after"]["all"],
        )
    if args.report is not None:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=1) + "\n")
    if args.write is not None:
        digest = write_metadata(args.write, tuned)
        log.info("wrote the thresholds into %s (sha256 %s)", args.write, digest)


if __name__ == "__main__":
    main()
