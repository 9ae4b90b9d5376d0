"""The benchmark runner's glue: the manifest, a fake system through `run_items`, clear errors on bad data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mir_eval", reason="mir_eval (the bench/dev extra) is not installed")

from bench.dataset import DatasetError, load_items  # noqa: E402
from bench.run import main, run_items  # noqa: E402
from bench.score import ScoredNote  # noqa: E402

NOTES = [
    {
        "pitch": 40 + i,
        "start": i * 0.5,
        "end": i * 0.5 + 0.4,
        "velocity": 0.7,
        "family": "bass",
        "is_drum": False,
    }
    for i in range(6)
]


def make_data(root: Path) -> Path:
    song = root / "00-test"
    song.mkdir(parents=True)
    (song / "bass.flac").write_bytes(b"not used by the fake system")
    (song / "bass.json").write_text(json.dumps({"notes": NOTES}))
    manifest = {
        "items": [
            {
                "id": "00-test/bass",
                "song": "00-test",
                "source": "mma",
                "stem": "bass",
                "audio": "00-test/bass.flac",
                "truth": "00-test/bass.json",
                "duration": 3.0,
                "quick": True,
            }
        ],
        "songs": [{"id": "00-test", "description": "a test song"}],
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


class Fake:
    """A system that returns the first `hits` reference notes, and records its calls."""

    def __init__(self, name: str, hits: int) -> None:
        self.name = name
        self.hits = hits
        self.calls: list[tuple[Path, str]] = []

    def transcribe(self, path: Path, stem: str) -> tuple[list[ScoredNote], Any]:
        self.calls.append((path, stem))
        return [ScoredNote.from_dict(n) for n in NOTES[: self.hits]], None

    @staticmethod
    def save(raw: Any, stem_path: Path) -> None:
        stem_path.with_suffix(".txt").write_text("saved")


def test_run_items_warms_up_then_scores_each_system(tmp_path: Path) -> None:
    items = load_items(make_data(tmp_path / "data"))
    a, b = Fake("a", 6), Fake("b", 3)
    runs = run_items(items, [a, b], save_dir=tmp_path / "pred", log=lambda _: None)
    assert len(a.calls) == 2 and a.calls[-1][1] == "bass"  # one warm-up, one timed call
    by_system = {r.system: r for r in runs}
    assert by_system["a"].score.pitched is not None and by_system["a"].score.pitched.f1 == 1.0
    assert by_system["b"].score.pitched is not None
    assert by_system["b"].score.pitched.f1 == pytest.approx(2 * 0.5 / 1.5)
    assert (tmp_path / "pred" / "b" / "00-test" / "bass.txt").read_text() == "saved"


def test_missing_or_broken_data_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="python -m bench.build"):
        load_items(tmp_path)
    root = make_data(tmp_path / "data")
    (root / "00-test" / "bass.flac").unlink()
    with pytest.raises(DatasetError, match="missing"):
        load_items(root)
    (root / "manifest.json").write_text("{}")
    with pytest.raises(DatasetError, match="malformed"):
        load_items(root)


def test_run_main_reports_no_matching_item(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_data(tmp_path / "data")
    assert main(["--data", str(root), "--items", "nothing*", "--out", str(tmp_path / "out")]) == 1
    assert "no benchmark item matches" in capsys.readouterr().err
