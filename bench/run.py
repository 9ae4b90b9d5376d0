"""Run the benchmark: stemscribe and basic-pitch on the same audio, dev and held-out splits side by side.

    python -m bench.run [--split dev|heldout|all] [--quick] [--items GLOB] [--no-peer]
                        [--drums auto|dsp|model] [--engine NAME] [--save]

Each data folder is one group: `dev` (bench/data, FluidR3_GM: the split the decoders were tuned on) and
`held-out fluidr3` / `held-out csound` (bench/data-heldout/*: other songs, each rendered with both
SoundFonts). A group's data is built first when its folder is empty or of an older format. Prints one
table comparing the groups (rows: the headline metrics; cells: stemscribe / basic-pitch) and writes it,
each group's full tables and every item's counts as Markdown and JSON to `bench/out/`.
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
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.dataset import DatasetError, Item, load_items, select_items
from bench.score import (
    Aggregate,
    Counts,
    ItemScore,
    aggregate,
    drum_class_name,
    is_kit_class,
    kit_and_aux,
    score_item,
)
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
# Systems that write no drum notes (basic-pitch): their drum cells read "–", not 0.
NO_DRUMS: frozenset[str] = frozenset({"basic-pitch"})


@dataclass(slots=True)
class Run:
    """One system on one item: its scores and the wall time of its transcription."""

    item: Item
    system: str
    score: ItemScore
    wall: float
    n_notes: int


@dataclass(slots=True)
class Group:
    """One data folder of a split: its items, and once run, its runs and summary table."""

    name: str  # "dev", "held-out fluidr3", "held-out csound"
    split: str
    font: str
    data: Path
    items: list[Item]
    soundfont: str = ""
    runs: list[Run] = field(default_factory=list)
    table: dict[str, dict[str, Any]] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def slug(self) -> str:
        return "dev" if self.split == "dev" else f"{self.split}-{self.font}"


def run_items(
    items: Sequence[Item],
    systems: Sequence[System],
    *,
    save_dir: Path | None = None,
    log: Callable[[str], None] = print,
    warm_up: bool = True,
    label: str = "",
) -> list[Run]:
    """Transcribe every item with every system and score it; each system first transcribes one item
    untimed unless `warm_up` is False (the systems are warm already)."""
    if not items:
        return []
    if warm_up:
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
        log(f"{label}[{n:>3}/{len(items)}] {item.id:<34} " + " | ".join(parts))
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
    """F1 of a metric of METRIC_COLUMNS, or of "kit" / "aux" (the drum classes summed: kit classes, other
    keys); None where the group has no such reference or estimate."""
    if metric in ("kit", "aux"):
        if agg.micro["drums"] is None:
            return None
        c = kit_and_aux(agg.drum_classes)[0 if metric == "kit" else 1]
        return c.f1 if c.n_ref or c.n_est else None
    if mean:
        return agg.mean[metric]
    c = agg.micro[metric]
    return None if c is None else c.f1


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _cell(agg: Aggregate, metric: str, system: str, *, mean: bool = False) -> str:
    if system in NO_DRUMS and metric in ("drums", "kit", "aux"):
        return "–"
    return _fmt(_f1(agg, metric, mean=mean))


def table_rows(
    table: dict[str, dict[str, Any]], systems: Sequence[str], *, mean: bool = False
) -> list[list[str]]:
    """Text cells: row name, items, then per metric "stemscribe / basic-pitch" F1, then real-time factors."""
    out = []
    for row, by_system in table.items():
        first = by_system[systems[0]]
        cells = [row, str(first["items"])]
        for metric, _ in METRIC_COLUMNS:
            cells.append(" / ".join(_cell(by_system[s]["aggregate"], metric, s, mean=mean) for s in systems))
        cells.append(" / ".join(_fmt(by_system[s]["rtf"], 0) + "x" for s in systems))
        out.append(cells)
    return out


def headers(systems: Sequence[str]) -> list[str]:
    who = " / ".join(systems)
    return ["rows", "items"] + [f"{label} ({who})" for _, label in METRIC_COLUMNS] + [f"RTF ({who})"]


def drum_class_rows(table: dict[str, dict[str, Any]], system: str) -> list[list[str]]:
    """Per drum class present (kit classes first, then the auxiliary ones and keys of no class), then the
    kit and auxiliary totals: reference onsets and F1 on the drum stems and on the mixes."""
    aggs = [table.get(row, {}).get(system, {}).get("aggregate") for row in (Family.DRUMS.value, MIXES_ROW)]
    present = sorted(
        {k for a in aggs if a is not None for k in a.drum_classes}, key=lambda k: (not is_kit_class(k), k)
    )

    def cells(c: Counts | None) -> list[str]:
        return ["–", "–"] if c is None else [str(c.n_ref), _fmt(c.f1 if c.n_ref or c.n_est else None)]

    rows = []
    for cls in present:
        row = [f"{drum_class_name(cls)} ({cls})"]
        for a in aggs:
            row += cells(None if a is None else a.drum_classes.get(cls))
        rows.append(row)
    for i, name in enumerate(("all kit classes", "all auxiliary percussion")):
        row = [name]
        for a in aggs:
            row += cells(None if a is None else kit_and_aux(a.drum_classes)[i])
        rows.append(row)
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


# The comparison table's rows: (label, table row, metric); "families" expands to one row per pitched family.
COMPARISON: tuple[tuple[str, str, str], ...] = (
    ("stems, pitched onset F1", STEMS_ROW, "pitched"),
    ("families", "", "pitched"),
    ("mixes, pitched onset F1", MIXES_ROW, "pitched"),
    ("mixes, instrument-aware onset F1", MIXES_ROW, "instrument"),
    ("stems, onset+offset F1", STEMS_ROW, "pitched_offset"),
    ("drum stems, drum onset F1 (all keys)", Family.DRUMS.value, "drums"),
    ("drum stems, kit classes", Family.DRUMS.value, "kit"),
    ("drum stems, auxiliary percussion", Family.DRUMS.value, "aux"),
    ("mixes, drum onset F1 (all keys)", MIXES_ROW, "drums"),
    ("mixes, kit classes", MIXES_ROW, "kit"),
    ("mixes, auxiliary percussion", MIXES_ROW, "aux"),
)


def _comparison_lines(groups: Sequence[Group]) -> list[tuple[str, str, str]]:
    lines: list[tuple[str, str, str]] = []
    for label, row, metric in COMPARISON:
        if label != "families":
            lines.append((label, row, metric))
            continue
        for family in Family:
            if family is not Family.DRUMS and any(family.value in g.table for g in groups):
                lines.append((f"  {family.value} stems", family.value, metric))
    return lines


def comparison(groups: Sequence[Group], systems: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """label -> group name -> {"items": n, system: F1 or None}: the headline figures of every group."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for label, row, metric in _comparison_lines(groups):
        out[label] = {}
        for g in groups:
            by_system = g.table.get(row)
            if by_system is None:
                out[label][g.name] = {"items": 0, **{s: None for s in systems}}
                continue
            cell: dict[str, Any] = {"items": by_system[systems[0]]["items"]}
            for s in systems:
                f1 = _f1(by_system[s]["aggregate"], metric)
                cell[s] = None if s in NO_DRUMS and metric in ("drums", "kit", "aux") else f1
            out[label][g.name] = cell
    return out


def comparison_rows(groups: Sequence[Group], systems: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """Headers and text cells of the comparison: one column per group, "stemscribe / basic-pitch" cells."""
    figures = comparison(groups, systems)
    head = ["metric"] + [f"{g.name} ({len({i.song for i in g.items})} songs)" for g in groups]
    rows = []
    for label, by_group in figures.items():
        cells = [label]
        for g in groups:
            c = by_group[g.name]
            cells.append("–" if not c["items"] else " / ".join(_fmt(c[s]) for s in systems))
        rows.append(cells)
    return head, rows


def aux_share_row(groups: Sequence[Group], systems: Sequence[str]) -> list[str]:
    """Per group: the auxiliary percussion's share of the reference drum onsets in the drum stems."""
    cells = ["drum stems, auxiliary share of reference onsets"]
    for g in groups:
        agg = g.table.get(Family.DRUMS.value, {}).get(systems[0], {}).get("aggregate")
        if agg is None:
            cells.append("–")
            continue
        kit, aux = kit_and_aux(agg.drum_classes)
        total = kit.n_ref + aux.n_ref
        cells.append(f"{aux.n_ref} of {total}" if total else "–")
    return cells


def _md(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def markdown(table: dict[str, dict[str, Any]], systems: Sequence[str], meta: dict[str, Any]) -> str:
    """One group's section: its tables (micro, mean per item, drum classes, onset deviations) and songs."""
    title = meta.get("group", "Benchmark")
    parts = [
        f"{title}: `{meta['command']}` — {meta['items']} items, {meta['audio_s']:.0f} s of audio, "
        f"{meta['cpus']} CPUs (load average {meta.get('load_at_start', '?')} at start), "
        f"drums backend `{meta['drums']}`, commit {meta.get('commit')}, {meta['date']}.",
        "",
        "Micro F1 (counts summed over items):",
        "",
        _md(headers(systems), table_rows(table, systems)),
        "",
        "Mean F1 per item:",
        "",
        _md(headers(systems), table_rows(table, systems, mean=True)),
        "",
        f"{systems[0]} drum onsets by class (the class table's; keys of no class are their own):",
        "",
        _md(
            ["class", "drum stems: onsets", "drum stems: F1", "mixes: onsets", "mixes: F1"],
            drum_class_rows(table, systems[0]),
        ),
        "",
        "Pitched onset deviation in ms, estimate minus reference, over notes matched within 150 ms "
        "(median, 10th .. 90th percentile):",
        "",
        _md(["rows", *systems], deviation_rows(table, systems)),
        "",
        "Pitched metrics count non-drum notes regardless of instrument; "
        "drum F1 folds GM keys onto the class table's classes (kit and auxiliary) and scores any key of no "
        "class as its own; "
        "instrument-aware F1 matches non-drum notes within their instrument family (basic-pitch's notes "
        "count as piano). RTF = audio seconds / wall seconds, models loaded once (warm).",
    ]
    songs = meta.get("songs")
    if songs:
        parts += [
            "",
            "Songs:",
            "",
            _md(["song", "material", "stems"], [[s["id"], s["description"], s["stems"]] for s in songs]),
        ]
    return "\n".join(parts) + "\n"


def report_markdown(groups: Sequence[Group], systems: Sequence[str], meta: dict[str, Any]) -> str:
    """The whole report: the comparison of the groups, then each group's section."""
    head, rows = comparison_rows(groups, systems)
    who = " / ".join(systems)
    parts = [
        f"# Benchmark: `{meta['command']}`",
        "",
        f"Commit {meta.get('commit')}, {meta['date']}, {meta['cpus']} CPUs (load average "
        f"{meta.get('load_at_start', '?')} at start), {meta['elapsed_s']:.0f} s wall. Micro F1, cells "
        f"{who}; dev is the split the decoders were tuned on, held-out the songs nothing is tuned on.",
        "",
        _md(head, [*rows, aux_share_row(groups, systems)]),
        "",
    ]
    for g in groups:
        group_meta = {**meta, **g_meta(g)}
        parts += [f"## {g.name}", "", markdown(g.table, systems, group_meta)]
    return "\n".join(parts)


def g_meta(g: Group) -> dict[str, Any]:
    return {
        "group": g.name,
        "split": g.split,
        "font": g.font,
        "soundfont": g.soundfont,
        "data": str(g.data),
        "items": len(g.items),
        "mixes": sum(1 for i in g.items if i.is_mix),
        "audio_s": sum(i.duration for i in g.items),
        "wall_s": round(g.wall_s, 1),
        "songs": song_list(g.data, g.items),
    }


def group_json(g: Group) -> dict[str, Any]:
    rows = {
        row: {
            name: {
                **{k: v for k, v in cell.items() if k != "aggregate"},
                **cell["aggregate"].to_dict(),
            }
            for name, cell in by_system.items()
        }
        for row, by_system in g.table.items()
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
        for r in g.runs
    ]
    return {**g_meta(g), "rows": rows, "items": items}


def to_json(groups: Sequence[Group], systems: Sequence[str], meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "meta": meta,
        "comparison": comparison(groups, systems),
        "groups": {g.name: group_json(g) for g in groups},
    }


def print_comparison(groups: Sequence[Group], systems: Sequence[str], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    head, rows = comparison_rows(groups, systems)
    t = Table(title=title)
    for h in head:
        t.add_column(h, justify="left" if h == "metric" else "right")
    for cells in [*rows, aux_share_row(groups, systems)]:
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


def ensure_split(split: str, root: Path | None, log: Callable[[str], None]) -> dict[str, Path]:
    """The data folders of a split (font -> folder), built first where missing or of an older format.

    A folder holding another split's data is an error, never rebuilt over.
    """
    from bench.build import build, default_seed, is_current, split_folders

    folders = split_folders(split, root)
    stale: int | None = None
    for folder in folders.values():
        manifest = folder / "manifest.json"
        if not manifest.exists():
            stale = default_seed(split) if stale is None else stale
            log(f"no benchmark in {folder}: building the {split} split first")
            continue
        data = json.loads(manifest.read_text(encoding="utf-8"))
        if data.get("split", "dev") != split:
            raise DatasetError(f"{folder} holds the {data.get('split')} split, not {split}")
        if not is_current(manifest, split=split):
            stale = int(data.get("seed", default_seed(split)))
            log(f"{folder} is of an older format: rebuilding the {split} split (seed {stale})")
    if stale is not None:
        build(root, split=split, seed=stale, force=True, log=log)
    return folders


def load_groups(
    split: str,
    *,
    data: Path | None = None,
    heldout_data: Path | None = None,
    quick: bool = False,
    pattern: str | None = None,
    log: Callable[[str], None] = print,
) -> list[Group]:
    """The groups of `split` ("dev", "heldout" or "all"), their items selected by `quick` and `pattern`."""
    groups = []
    for one, root in (("dev", data), ("heldout", heldout_data)):
        if split not in (one, "all"):
            continue
        for font, folder in ensure_split(one, root, log).items():
            manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
            name = "dev" if one == "dev" else f"held-out {font}"
            items = select_items(load_items(folder), quick=quick, pattern=pattern)
            groups.append(Group(name, one, font, folder, items, str(manifest.get("soundfont", ""))))
    return groups


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--split",
        choices=("dev", "heldout", "all"),
        default=None,
        help="which split to run (default all: dev and both held-out renders side by side; with only "
        "--data or only --heldout-data, that split)",
    )
    parser.add_argument("--quick", action="store_true", help="only the quick third of each split's songs")
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
        "--engine",
        default=None,
        help="stemscribe's engine, passed as Transcriber(engine=NAME) (default: the library's own)",
    )
    parser.add_argument(
        "--save",
        action="store_true",
        help="also save every prediction (stemscribe JSON + MIDI, basic-pitch MIDI) under OUT/pred",
    )
    parser.add_argument("--data", type=Path, default=None, help="dev split folder (default bench/data)")
    parser.add_argument(
        "--heldout-data",
        type=Path,
        default=None,
        help="held-out split folder, one subfolder per SoundFont (default bench/data-heldout)",
    )
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="where the report goes (default bench/out)")
    args = parser.parse_args(argv)

    from bench.build import BuildError

    split = args.split
    if split is None:
        given = (args.data is not None, args.heldout_data is not None)
        split = {(True, False): "dev", (False, True): "heldout"}.get(given, "all")

    def err(m: str) -> None:
        print(m, file=sys.stderr)

    try:
        groups = load_groups(
            split,
            data=args.data,
            heldout_data=args.heldout_data,
            quick=args.quick,
            pattern=args.items,
            log=err,
        )
    except (DatasetError, BuildError) as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    groups = [g for g in groups if g.items]
    if not groups:
        print(f"no benchmark item matches {args.items!r}", file=sys.stderr)
        return 1

    from bench.systems import BasicPitch, Stemscribe

    systems: list[Any] = [Stemscribe(drums=args.drums, engine=args.engine)]
    if not args.no_peer:
        systems.append(BasicPitch())
    names = [s.name for s in systems]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    for n, g in enumerate(groups):
        save_dir = args.out / "pred" / g.slug if args.save else None
        g0 = time.perf_counter()
        g.runs = run_items(g.items, systems, save_dir=save_dir, warm_up=n == 0, label=f"{g.name} ")
        g.wall_s = time.perf_counter() - g0
        g.table = summarize(g.runs, names)
    elapsed = time.perf_counter() - t0

    command = " ".join(["python -m bench.run", *(sys.argv[1:] if argv is None else argv)])
    all_items = [i for g in groups for i in g.items]
    meta = {
        "command": command,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _git_commit(),
        "systems": names,
        "drums": args.drums,
        "engine": args.engine,
        "groups": [g.name for g in groups],
        "items": len(all_items),
        "mixes": sum(1 for i in all_items if i.is_mix),
        "audio_s": sum(i.duration for i in all_items),
        "elapsed_s": round(elapsed, 1),
        "cpus": os.cpu_count(),
        "load_at_start": round(load, 2),
        "load_at_end": round(os.getloadavg()[0], 2),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "stemscribe": _version("stemscribe"),
        "basic_pitch": _version("basic-pitch"),
        "onnxruntime": _version("onnxruntime"),
    }
    title = (
        f"{meta['items']} items, {meta['audio_s']:.0f} s audio, {elapsed:.0f} s wall; "
        f"micro F1, {' / '.join(names)}"
    )
    print_comparison(groups, names, title)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(to_json(groups, names, meta), indent=1), encoding="utf-8")
    (args.out / "bench.md").write_text(report_markdown(groups, names, meta), encoding="utf-8")
    print(f"wrote {args.out / 'bench.md'} and {args.out / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
