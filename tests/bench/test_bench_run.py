"""The benchmark runner's glue: the manifest, a fake system through `run_items`, clear errors on bad data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mir_eval", reason="mir_eval (the bench/dev extra) is not installed")

import bench.systems  # noqa: E402
from bench import build  # noqa: E402
from bench.dataset import DatasetError, load_items  # noqa: E402
from bench.run import comparison, comparison_rows, load_groups, main, run_items, summarize  # noqa: E402
from bench.score import ScoredNote  # noqa: E402
from bench.systems import transcriber_options  # noqa: E402

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


DRUMS = [
    {
        "pitch": k,
        "start": i * 0.25,
        "end": i * 0.25 + 0.1,
        "velocity": 0.7,
        "family": "drums",
        "is_drum": True,
    }
    for i, k in enumerate([36, 54, 38, 54])  # kick, tambourine, snare, tambourine
]


def make_data(root: Path, *, split: str = "dev", font: str = "fluidr3", drums: bool = False) -> Path:
    """A current data folder of `split` with one bass stem (and one drum stem if asked)."""
    song = root / "00-test"
    song.mkdir(parents=True)
    stems = {"bass": NOTES, **({"drums": DRUMS} if drums else {})}
    items = []
    for stem, notes in stems.items():
        (song / f"{stem}.flac").write_bytes(b"not used by the fake system")
        (song / f"{stem}.json").write_text(json.dumps({"notes": notes}))
        items.append(
            {
                "id": f"00-test/{stem}",
                "song": "00-test",
                "source": "mma",
                "stem": stem,
                "audio": f"00-test/{stem}.flac",
                "truth": f"00-test/{stem}.json",
                "duration": 3.0,
                "quick": True,
            }
        )
    manifest = {
        "version": build.FORMAT_VERSION,
        "split": split,
        "font": font,
        "seed": build.default_seed(split),
        "plan": list(build.HELDOUT_PLAN if split == "heldout" else build.PLAN),
        "items": items,
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
        notes = DRUMS[:2] if stem == "drums" else NOTES[: self.hits]  # the kick and one tambourine
        return [ScoredNote.from_dict(n) for n in notes], None

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


def make_splits(root: Path) -> tuple[Path, Path]:
    dev = make_data(root / "data", drums=True)
    for font in build.FONTS:
        make_data(root / "heldout" / font, split="heldout", font=font, drums=True)
    return dev, root / "heldout"


def test_groups_run_side_by_side_dev_and_each_heldout_font(tmp_path: Path) -> None:
    dev, heldout = make_splits(tmp_path)
    groups = load_groups("all", data=dev, heldout_data=heldout, log=lambda _: None)
    assert [g.name for g in groups] == ["dev", "held-out fluidr3", "held-out csound"]
    assert [g.slug for g in groups] == ["dev", "heldout-fluidr3", "heldout-csound"]
    a, b = Fake("stemscribe", 6), Fake("basic-pitch", 3)
    for n, g in enumerate(groups):
        g.runs = run_items(g.items, [a, b], log=lambda _: None, warm_up=n == 0)
        g.table = summarize(g.runs, ["stemscribe", "basic-pitch"])
    assert len(a.calls) == 1 + 3 * 2  # one warm-up for the whole run
    figures = comparison(groups, ["stemscribe", "basic-pitch"])
    cell = figures["stems, pitched onset F1"]["held-out csound"]
    assert cell["stemscribe"] == 1.0 and cell["basic-pitch"] == pytest.approx(2 * 0.5 / 1.5)
    # the kick and one of two tambourines found: kit classes all right, auxiliary percussion half
    assert figures["drum stems, kit classes"]["dev"]["stemscribe"] == pytest.approx(2 / 3)
    assert figures["drum stems, auxiliary percussion"]["dev"]["stemscribe"] == pytest.approx(2 / 3)
    assert figures["drum stems, drum onset F1 (all keys)"]["dev"]["basic-pitch"] is None
    head, rows = comparison_rows(groups, ["stemscribe", "basic-pitch"])
    assert head == ["metric", "dev (1 songs)", "held-out fluidr3 (1 songs)", "held-out csound (1 songs)"]
    by_label = {r[0]: r[1:] for r in rows}
    assert by_label["stems, pitched onset F1"] == ["1.000 / 0.667"] * 3
    assert by_label["  bass stems"] == ["1.000 / 0.667"] * 3
    assert by_label["mixes, pitched onset F1"] == ["–"] * 3  # no mixes in the fixture
    assert by_label["drum stems, kit classes"][0] == "0.667 / –"


def test_main_reports_both_splits_in_one_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dev, heldout = make_splits(tmp_path)
    made: list[dict[str, Any]] = []

    def stemscribe(**options: Any) -> Fake:
        made.append(options)
        return Fake("stemscribe", 6)

    monkeypatch.setattr(bench.systems, "Stemscribe", stemscribe)
    monkeypatch.setattr(bench.systems, "BasicPitch", lambda: Fake("basic-pitch", 3))
    out = tmp_path / "out"
    args = ["--data", str(dev), "--heldout-data", str(heldout), "--out", str(out), "--engine", "ours"]
    assert main(args) == 0
    assert made == [{"drums": "auto", "engine": "ours"}]
    report = json.loads((out / "bench.json").read_text())
    assert list(report["groups"]) == ["dev", "held-out fluidr3", "held-out csound"]
    assert report["meta"]["engine"] == "ours"
    assert report["comparison"]["stems, pitched onset F1"]["held-out fluidr3"]["stemscribe"] == 1.0
    assert report["groups"]["held-out csound"]["rows"]["drums"]["stemscribe"]["drum_classes"][
        "tambourine (54)"
    ] == {"tp": 1, "fp": 0, "fn": 1, "precision": 1.0, "recall": 0.5, "f1": 0.6667}
    md = (out / "bench.md").read_text()
    assert "## held-out csound" in md and "| stems, pitched onset F1 | 1.000 / 0.667 |" in md

    made.clear()
    assert main(["--split", "heldout", "--heldout-data", str(heldout), "--out", str(out), "--no-peer"]) == 0
    assert made == [{"drums": "auto", "engine": None}]
    assert list(json.loads((out / "bench.json").read_text())["groups"]) == [
        "held-out fluidr3",
        "held-out csound",
    ]


def test_engine_is_passed_to_stemscribe_only_when_named() -> None:
    assert transcriber_options() == {"drums": "auto"}
    assert transcriber_options(drums="dsp", engine="basic-pitch") == {"drums": "dsp", "engine": "basic-pitch"}


def test_a_folder_of_the_other_split_is_an_error_not_rebuilt(tmp_path: Path) -> None:
    folder = make_data(tmp_path / "h", split="heldout")
    with pytest.raises(DatasetError, match="holds the heldout split"):
        load_groups("dev", data=folder, log=lambda _: None)
    assert (folder / "manifest.json").exists()
