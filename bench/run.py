"""Run the development benchmark: stemscribe and basic-pitch on the same audio, scored side by side.

    python -m bench.run [--quick] [--items GLOB] [--no-peer] [--drums dsp|model] [--save]

Builds the data first if `bench/data/` is empty. Prints one table (rows: stem families, all stems, mixes;
columns: pitched onset F1, onset+offset F1, drum class F1, instrument-aware onset F1, real-time factor,
each as stemscribe / basic-pitch) and writes it as JSON and Markdown to `bench/out/`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.dataset import DatasetError, Item, load_items, select_items
from bench.score import DRUM_CLASS_NAMES, Aggregate, Counts, ItemScore, aggregate, score_item
from bench.systems import System
from stemscribe.stems import Family

OUT_DIR = Path(__file__).resolve().parent / "out"
METRIC_COLUMNS: tuple[tuple[str, str], ...] = (
    ("pitched", "pitched onset F1"),
    ("pitched_offset", "onset+offset F1"),
    ("drums", "drums class F1"),
    ("instrument", "instrument-aware F1"),
)
STEMS_ROW = "stems overall"
MIXES_ROW = "mixes"


@dataclass(slots=True)
class Run:
    """One system on one item: its scores and the wall time of its transcription."""

    item: Item
    system: str
    score: ItemScore
    wall: float
    n_notes: int


def run_items(
    items: Sequence[Item],
    systems: Sequence[System],
    *,
    save_dir: Path | None = None,
    log: Callable[[str], None] = print,
) -> list[Run]:
    """Transcribe every item with every system (after one untimed warm-up each) and score it."""
    if not items:
        return []
    for system in systems:
        system.transcribe(items[0].audio, items[0].stem)
    runs: list[Run] = []
    for n, item in enumerate(items, 1):
        ref = item.reference()
        parts = []
        for system in systems:
            t0 = time.perf_counter()
            notes, raw = system.transcribe(item.audio, item.stem)
            wall = time.perf_counter() - t0
            score = score_item(ref, notes)
            runs.append(Run(item, system.name, score, wall, len(notes)))
            if save_dir is not None:
                path = save_dir / system.name / item.song / item.stem
                path.parent.mkdir(parents=True, exist_ok=True)
                system.save(raw, path)  # type: ignore[attr-defined]
            parts.append(f"{system.name} {_brief(score)} {wall:5.2f}s")
        log(f"[{n:>3}/{len(items)}] {item.id:<34} " + " | ".join(parts))
    return runs


def _brief(score: ItemScore) -> str:
    def f(c: Counts | None) -> str:
        return "  - " if c is None else f"{c.f1:.2f}"

    return (
        f"on {f(score.pitched)} off {f(score.pitched_offset)} dr {f(score.drums)} inst {f(score.instrument)}"
    )


def row_groups(items: Sequence[Item]) -> dict[str, list[str]]:
    """Table rows and the item ids in each: one per stem family present, all stems, all mixes."""
    rows: dict[str, list[str]] = {}
    for family in Family:
        ids = [i.id for i in items if i.stem == family.value]
        if ids:
            rows[family.value] = ids
    stems = [i.id for i in items if not i.is_mix]
    if stems:
        rows[STEMS_ROW] = stems
    mixes = [i.id for i in items if i.is_mix]
    if mixes:
        rows[MIXES_ROW] = mixes
    return rows


def summarize(runs: Sequence[Run], systems: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per row and system: the aggregate scores, audio seconds, wall seconds and real-time factor."""
    items = list({r.item.id: r.item for r in runs}.values())
    table: dict[str, dict[str, Any]] = {}
    for row, ids in row_groups(items).items():
        wanted = set(ids)
        table[row] = {}
        for name in systems:
            group = [r for r in runs if r.system == name and r.item.id in wanted]
            audio = sum(r.item.duration for r in group)
            wall = sum(r.wall for r in group)
            table[row][name] = {
                "aggregate": aggregate([r.score for r in group]),
                "items": len(group),
                "audio_s": audio,
                "wall_s": wall,
                "rtf": audio / wall if wall > 0 else None,
            }
    return table


def _f1(agg: Aggregate, metric: str, *, mean: bool = False) -> float | None:
    if mean:
        return agg.mean[metric]
    c = agg.micro[metric]
    return None if c is None else c.f1


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def table_rows(
    table: dict[str, dict[str, Any]], systems: Sequence[str], *, mean: bool = False
) -> list[list[str]]:
    """Text cells: row name, items, then per metric "stemscribe / basic-pitch" F1, then real-time factors."""
    out = []
    for row, by_system in table.items():
        first = by_system[systems[0]]
        cells = [row, str(first["items"])]
        for metric, _ in METRIC_COLUMNS:
            cells.append(" / ".join(_fmt(_f1(by_system[s]["aggregate"], metric, mean=mean)) for s in systems))
        cells.append(" / ".join(_fmt(by_system[s]["rtf"], 0) + "x" for s in systems))
        out.append(cells)
    return out


def headers(systems: Sequence[str]) -> list[str]:
    who = " / ".join(systems)
    return ["rows", "items"] + [f"{label} ({who})" for _, label in METRIC_COLUMNS] + [f"RTF ({who})"]


def drum_class_rows(table: dict[str, dict[str, Any]], system: str) -> list[list[str]]:
    """Per drum class: reference onsets and F1 on the drum stems and on the mixes."""
    rows = []
    drum_agg = table.get(Family.DRUMS.value, {}).get(system, {}).get("aggregate")
    mix_agg = table.get(MIXES_ROW, {}).get(system, {}).get("aggregate")
    for cls, name in DRUM_CLASS_NAMES.items():
        cells = [f"{name} ({cls})"]
        for agg in (drum_agg, mix_agg):
            c = agg.drum_classes[cls] if agg is not None else None
            cells += ["–", "–"] if c is None else [str(c.n_ref), _fmt(c.f1 if c.n_ref or c.n_est else None)]
        rows.append(cells)
    return rows


def deviation_rows(table: dict[str, dict[str, Any]], systems: Sequence[str]) -> list[list[str]]:
    """Per row: each system's pitched onset deviation (estimate minus reference), median and 10-90 % range."""
    rows = []
    for row, by_system in table.items():
        cells = [row]
        for s in systems:
            d = by_system[s]["aggregate"].onset_deviation_ms
            cells.append("–" if d is None else f"{d['median']:+.0f} ({d['p10']:+.0f} .. {d['p90']:+.0f})")
        rows.append(cells)
    return rows


def markdown(table: dict[str, dict[str, Any]], systems: Sequence[str], meta: dict[str, Any]) -> str:
    def md(head: list[str], rows: list[list[str]]) -> str:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)

    parts = [
        f"Benchmark: `{meta['command']}` — {meta['items']} items, {meta['audio_s']:.0f} s of audio, "
        f"{meta['cpus']} CPUs (load average {meta.get('load_at_start', '?')} at start), "
        f"drums backend `{meta['drums']}`, commit {meta.get('commit')}, {meta['date']}.",
        "",
        "Micro F1 (counts summed over items):",
        "",
        md(headers(systems), table_rows(table, systems)),
        "",
        "Mean F1 per item:",
        "",
        md(headers(systems), table_rows(table, systems, mean=True)),
        "",
        "stemscribe drum onsets by class:",
        "",
        md(
            ["class", "drum stems: onsets", "drum stems: F1", "mixes: onsets", "mixes: F1"],
            drum_class_rows(table, systems[0]),
        ),
        "",
        "Pitched onset deviation in ms, estimate minus reference, over notes matched within 150 ms "
        "(median, 10th .. 90th percentile):",
        "",
        md(["rows", *systems], deviation_rows(table, systems)),
        "",
        "Pitched metrics count non-drum notes regardless of instrument; "
        "drum F1 folds GM keys onto 9 classes; "
        "instrument-aware F1 matches non-drum notes within their instrument family (basic-pitch's notes "
        "count as piano). RTF = audio seconds / wall seconds, models loaded once (warm).",
    ]
    songs = meta.get("songs")
    if songs:
        parts += [
            "",
            "Songs:",
            "",
            md(["song", "material", "stems"], [[s["id"], s["description"], s["stems"]] for s in songs]),
        ]
    return "\n".join(parts) + "\n"


def to_json(table: dict[str, dict[str, Any]], runs: Sequence[Run], meta: dict[str, Any]) -> dict[str, Any]:
    rows = {
        row: {
            name: {
                **{k: v for k, v in cell.items() if k != "aggregate"},
                **cell["aggregate"].to_dict(),
            }
            for name, cell in by_system.items()
        }
        for row, by_system in table.items()
    }
    items = [
        {
            "item": r.item.id,
            "source": r.item.source,
            "stem": r.item.stem,
            "system": r.system,
            "wall_s": round(r.wall, 4),
            "notes": r.n_notes,
            **r.score.to_dict(),
        }
        for r in runs
    ]
    return {"meta": meta, "rows": rows, "items": items}


def print_table(table: dict[str, dict[str, Any]], systems: Sequence[str], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for h in headers(systems):
        t.add_column(h, justify="left" if h == "rows" else "right")
    for cells in table_rows(table, systems):
        t.add_row(*cells)
    Console(width=200).print(t)


def _git_commit() -> str | None:
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            cwd=Path(__file__).resolve().parent,
        )
    except OSError:
        return None
    return proc.stdout.strip() or None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def song_list(data_dir: Path, items: Sequence[Item]) -> list[dict[str, str]]:
    """The songs the run used: id, material (from the manifest) and the stems scored."""
    manifest = json.loads((data_dir / "manifest.json").read_text(encoding="utf-8"))
    described = {s["id"]: s["description"] for s in manifest.get("songs", ())}
    out: dict[str, dict[str, str]] = {}
    for i in items:
        row = out.setdefault(i.song, {"id": i.song, "description": described.get(i.song, ""), "stems": ""})
        row["stems"] = f"{row['stems']}, {i.stem}" if row["stems"] else i.stem
    return list(out.values())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the quick third of the songs")
    parser.add_argument(
        "--items", metavar="GLOB", help='only items whose id matches, e.g. "*/mix" or "*/bass"'
    )
    parser.add_argument("--no-peer", action="store_true", help="skip basic-pitch")
    parser.add_argument(
        "--drums",
        choices=("auto", "dsp", "model"),
        default="auto",
        help="stemscribe's drum backend (default auto: the model when it is available)",
    )
    parser.add_argument(
        "--save",
        action="store_true",
        help="also save every prediction (stemscribe JSON + MIDI, basic-pitch MIDI) under OUT/pred",
    )
    parser.add_argument("--data", type=Path, default=None, help="benchmark folder (default bench/data)")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="where the table goes (default bench/out)")
    args = parser.parse_args(argv)

    from bench.build import DATA_DIR, BuildError, build

    data_dir = args.data or DATA_DIR
    try:
        if not (data_dir / "manifest.json").exists():
            print(f"no benchmark in {data_dir}: building it first", file=sys.stderr)
            build(data_dir, log=lambda m: print(m, file=sys.stderr))
        items = select_items(load_items(data_dir), quick=args.quick, pattern=args.items)
    except (DatasetError, BuildError) as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if not items:
        print(f"no benchmark item matches {args.items!r}", file=sys.stderr)
        return 1

    from bench.systems import BasicPitch, Stemscribe

    systems: list[Any] = [Stemscribe(drums=args.drums)]
    if not args.no_peer:
        systems.append(BasicPitch())
    names = [s.name for s in systems]
    save_dir = args.out / "pred" if args.save else None
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    runs = run_items(items, systems, save_dir=save_dir)
    elapsed = time.perf_counter() - t0

    table = summarize(runs, names)
    command = " ".join(["python -m bench.run", *(sys.argv[1:] if argv is None else argv)])
    meta = {
        "command": command,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _git_commit(),
        "systems": names,
        "drums": args.drums,
        "items": len(items),
        "mixes": sum(1 for i in items if i.is_mix),
        "audio_s": sum(i.duration for i in items),
        "elapsed_s": round(elapsed, 1),
        "cpus": os.cpu_count(),
        "load_at_start": round(load, 2),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "stemscribe": _version("stemscribe"),
        "basic_pitch": _version("basic-pitch"),
        "onnxruntime": _version("onnxruntime"),
        "songs": song_list(data_dir, items),
    }
    print_table(table, names, f"{meta['items']} items, {meta['audio_s']:.0f} s audio, {elapsed:.0f} s wall")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(to_json(table, runs, meta), indent=1), encoding="utf-8")
    (args.out / "bench.md").write_text(markdown(table, names, meta), encoding="utf-8")
    print(f"wrote {args.out / 'bench.md'} and {args.out / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
