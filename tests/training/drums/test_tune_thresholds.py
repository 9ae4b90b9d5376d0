"""The per-input threshold tuner: its acceptance rule on made-up counts, and the metadata rewrite."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from bench.score import Counts, ScoredNote
from stemscribe.transcription.drum_model import DrumModel, default_weights_path, weights_available
from stemscribe.transcription.drums import DRUM_CLASSES
from training.drums.tune_thresholds import (
    GRID,
    Cached,
    coordinate_ascent,
    micro,
    totals,
    tunable_classes,
    write_metadata,
)

KICK, SNARE = DRUM_CLASSES[0], DRUM_CLASSES[1]
ALL = set(DRUM_CLASSES)


def _table(per_folder: dict[str, dict[int, tuple[Counts, Counts]]]) -> dict:
    """folder -> class -> (counts at thresholds >= 0.5, counts below 0.5), as `count_table` makes."""
    return {
        (folder, cls): {v: (low if v < 0.5 else high) for v in GRID}
        for folder, classes in per_folder.items()
        for cls, (high, low) in classes.items()
    }


def _start() -> list[float]:
    return [0.5] * len(DRUM_CLASSES)


def test_a_change_that_helps_every_folder_is_kept() -> None:
    better = (Counts(80, 0, 20), Counts(95, 5, 5))
    table = _table({"a": {KICK: better, SNARE: (Counts(50, 5, 5),) * 2}, "b": {KICK: better}})
    tuned, moves = coordinate_ascent(table, DRUM_CLASSES, _start(), ["a", "b"], margin=0.002, tunable=ALL)
    assert tuned[0] < 0.5 and tuned[1:] == _start()[1:]
    assert [m["class"] for m in moves] == ["kick"]


def test_a_change_that_costs_one_folder_its_class_f1_is_refused() -> None:
    table = _table(
        {
            "a": {KICK: (Counts(50, 0, 50), Counts(95, 0, 5))},
            "b": {KICK: (Counts(90, 0, 10), Counts(100, 15, 0)), SNARE: (Counts(10, 0, 90),) * 2},
        }
    )
    low = [0.3, *_start()[1:]]
    for folder in ("a", "b"):  # every folder's F1 over all classes rises: only b's kick F1 falls
        assert (
            micro(totals(table, DRUM_CLASSES, low, folder)).f1
            > micro(totals(table, DRUM_CLASSES, _start(), folder)).f1
        )
    b_kick = [totals(table, DRUM_CLASSES, t, "b")[KICK].f1 for t in (_start(), low)]
    assert b_kick[1] < b_kick[0]
    tuned, moves = coordinate_ascent(table, DRUM_CLASSES, _start(), ["a", "b"], margin=0.002, tunable=ALL)
    assert tuned == _start() and moves == []


def test_small_gains_and_untunable_classes_are_left_alone() -> None:
    slight = (Counts(1000, 0, 10), Counts(1001, 0, 9))  # +0.0005 F1: under the margin
    big = (Counts(5, 5, 5), Counts(10, 0, 0))
    table = _table({"a": {KICK: slight, SNARE: big}})
    tuned, moves = coordinate_ascent(table, DRUM_CLASSES, _start(), ["a"], margin=0.002, tunable={KICK})
    assert tuned == _start() and moves == []
    tuned, _ = coordinate_ascent(table, DRUM_CLASSES, _start(), ["a"], margin=0.0, tunable=ALL)
    assert tuned[0] < 0.5 and tuned[1] < 0.5


def _item(name: str, keys: dict[int, int]) -> Cached:
    """A cached item whose reference holds `keys[k]` onsets of GM key k."""
    notes = [ScoredNote(k, 0.1 * i, 0.1 * i + 0.05, "drums", True) for k, n in keys.items() for i in range(n)]
    empty = np.zeros((10, len(DRUM_CLASSES)), np.float32)
    return Cached("dev", name, "stem", 30.0, empty, empty, notes)


def test_a_class_heard_in_one_song_is_not_tunable() -> None:
    items = [
        _item("one", {36: 30, 41: 272, 75: 27}),  # 41, a low tom: folded onto its class, 45
        _item("two", {35: 12, 45: 5, 75: 19}),
        _item("three", {36: 9, 47: 57}),
    ]
    assert tunable_classes(items, min_onsets=20, min_songs=2) == {36, 75}
    assert tunable_classes(items, min_onsets=20, min_songs=1) == {36, 45, 47, 75}


@pytest.mark.skipif(not weights_available(), reason="stemscribe/weights/drums.onnx not present")
def test_write_metadata_rewrites_thresholds_and_checksum(tmp_path: Path) -> None:
    pytest.importorskip("onnx", reason="rewriting metadata needs the onnx package")
    src = default_weights_path()
    copy = tmp_path / "drums.onnx"
    shutil.copy(src, copy)
    shutil.copy(src.with_name(src.name + ".sha256"), tmp_path / "drums.onnx.sha256")
    n = len(DRUM_CLASSES)
    digest = write_metadata(copy, {"stem": [0.4] * n, "mix": [0.7] * n})
    assert (tmp_path / "drums.onnx.sha256").read_text().split()[0] == digest
    model = DrumModel(copy)  # checks the new sha256
    assert model.thresholds_for("stem") == (0.4,) * n
    assert model.thresholds_for("mix") == (0.7,) * n
    assert model.classes == DrumModel().classes
