"""The built benchmark on disk: its manifest, items and reference notes."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.score import ScoredNote


class DatasetError(RuntimeError):
    """The benchmark data is missing, stale or malformed."""


@dataclass(frozen=True, slots=True)
class Item:
    """One benchmark item: an audio file, the stem type to pass, and its reference notes' file."""

    id: str
    song: str
    source: str
    stem: str
    audio: Path
    truth: Path
    duration: float
    quick: bool

    @property
    def is_mix(self) -> bool:
        return self.stem == "mix"

    def reference(self) -> list[ScoredNote]:
        data = json.loads(self.truth.read_text(encoding="utf-8"))
        return [ScoredNote.from_dict(n) for n in data["notes"]]


def load_items(data_dir: Path) -> list[Item]:
    """All items listed in `data_dir/manifest.json`, each checked to exist on disk."""
    manifest = data_dir / "manifest.json"
    if not manifest.exists():
        raise DatasetError(f"no benchmark in {data_dir}; build it with: python -m bench.build")
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        items = [
            Item(
                id=e["id"],
                song=e["song"],
                source=e["source"],
                stem=e["stem"],
                audio=data_dir / e["audio"],
                truth=data_dir / e["truth"],
                duration=float(e["duration"]),
                quick=bool(e["quick"]),
            )
            for e in data["items"]
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise DatasetError(
            f"malformed {manifest}: {exc}; rebuild with: python -m bench.build --force"
        ) from exc
    missing = [str(p) for i in items for p in (i.audio, i.truth) if not p.exists()]
    if missing:
        raise DatasetError(
            f"{len(missing)} benchmark files missing (first: {missing[0]}); rebuild with --force"
        )
    return items


def select_items(items: Sequence[Item], *, quick: bool = False, pattern: str | None = None) -> list[Item]:
    """The quick third of the items and/or those whose id matches a glob ("*/mix", "03-*", "*/bass")."""
    out = [i for i in items if i.quick] if quick else list(items)
    if pattern:
        out = [i for i in out if fnmatch.fnmatchcase(i.id, pattern)]
    return out
