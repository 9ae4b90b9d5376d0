"""The benchmark's builder (windowing, melodies, the song plan) and its runner's tables."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mir_eval", reason="mir_eval (the bench/dev extra) is not installed")

from bench import build
from bench.build import MAJOR_SCALE, Note, Part, cut_window, generate_melody, parts_to_midi, truth_notes
from bench.dataset import Item, select_items
from bench.run import MIXES_ROW, STEMS_ROW, Run, markdown, row_groups, summarize, table_rows
from bench.score import ScoredNote, score_item


def part(notes: list[tuple[int, float, float]], *, program: int = 33, is_drum: bool = False) -> Part:
    return Part(program, is_drum, "p", [Note(p, s, e, 90) for p, s, e in notes], [(0.0, 7, 100)])


def test_cut_window_drops_earlier_notes_clips_late_ones_and_shifts_to_zero() -> None:
    p = part(
        [
            (40, 9.0, 10.5),
            (41, 10.0, 11.0),
            (42, 12.0, 13.0),
            (43, 39.5, 45.0),
            (44, 39.97, 40.5),
            (45, 41.0, 42.0),
        ]
    )
    p.controls = [(1.0, 7, 50), (5.0, 7, 80), (2.0, 64, 127), (20.0, 10, 30), (50.0, 7, 10)]
    [out] = cut_window([p], 10.0, 30.0)
    assert [(n.pitch, n.start, n.end) for n in out.notes] == [
        (41, 0.0, 1.0),
        (42, 2.0, 3.0),
        (43, 29.5, 30.0),
    ]
    # the last volume before the window is kept at 0, the sustain pedal is dropped, later events shift
    assert out.controls == [(0.0, 7, 80), (10.0, 10, 30)]


def test_cut_window_drops_parts_with_too_few_notes() -> None:
    assert cut_window([part([(40, 0.0, 1.0), (41, 1.0, 2.0)])], 0.0, 30.0) == []


def test_melody_is_monophonic_in_range_in_key_and_deterministic() -> None:
    chords = [(0, False), (7, False), (9, True), (5, False)] * 4
    kwargs = dict(key=2, scale=MAJOR_SCALE, chords=chords, bpm=100.0, low=60, high=79)
    notes = generate_melody(np.random.default_rng(1), **kwargs)  # type: ignore[arg-type]
    again = generate_melody(np.random.default_rng(1), **kwargs)  # type: ignore[arg-type]
    assert notes == again
    assert len(notes) > 30
    assert all(60 <= n.pitch <= 79 and (n.pitch - 2) % 12 in MAJOR_SCALE for n in notes)
    assert all(n.end > n.start for n in notes)
    assert all(a.end <= b.start for a, b in zip(notes, notes[1:], strict=False))
    assert len({n.velocity for n in notes}) > 5
    assert max(abs(a.pitch - b.pitch) for a, b in zip(notes, notes[1:], strict=False)) <= 12


def test_truth_notes_carry_family_drum_flag_and_velocity_in_0_1() -> None:
    parts = [
        part([(40, 0.0, 0.5)] * 3, program=33),
        part([(36, 0.0, 0.1)] * 3, program=0, is_drum=True),
        part([(70, 0.0, 0.5)] * 3, program=53),
    ]
    rows = truth_notes(parts)
    assert {(r["family"], r["is_drum"]) for r in rows} == {
        ("bass", False),
        ("drums", True),
        ("vocals", False),
    }
    assert all(0 < r["velocity"] <= 1 for r in rows)


def test_midi_round_trip_keeps_note_times_to_the_millisecond(tmp_path: Path) -> None:
    p = part([(40, 0.123456, 0.5), (43, 1.0001, 1.777), (47, 29.9, 30.0)])
    path = tmp_path / "x.mid"
    parts_to_midi([p]).write(str(path))
    [back] = build.parts_from_midi(path)
    for a, b in zip(p.notes, back.notes, strict=True):
        assert a.pitch == b.pitch
        assert abs(a.start - b.start) < 1e-3 and abs(a.end - b.end) < 1e-3


def _item(id_: str, stem: str, quick: bool = False) -> Item:
    return Item(id_, id_.split("/")[0], "mma", stem, Path("a.flac"), Path("a.json"), 30.0, quick)


def test_select_items_by_quick_and_glob() -> None:
    items = [_item("00-a/mix", "mix", True), _item("00-a/bass", "bass", True), _item("01-b/mix", "mix")]
    assert [i.id for i in select_items(items, quick=True)] == ["00-a/mix", "00-a/bass"]
    assert [i.id for i in select_items(items, pattern="*/mix")] == ["00-a/mix", "01-b/mix"]
    assert select_items(items, quick=True, pattern="01-*") == []


def test_summary_rows_metrics_and_real_time_factor() -> None:
    ref = [ScoredNote(40 + i, i * 0.5, i * 0.5 + 0.3, "bass") for i in range(4)]
    items = [_item("00-a/bass", "bass"), _item("00-a/mix", "mix")]
    runs = [
        Run(items[0], "stemscribe", score_item(ref, ref), 1.0, 4),
        Run(items[0], "basic-pitch", score_item(ref, ref[:2]), 2.0, 2),
        Run(items[1], "stemscribe", score_item(ref, []), 3.0, 0),
        Run(items[1], "basic-pitch", score_item(ref, ref), 1.0, 4),
    ]
    assert list(row_groups(items)) == ["bass", STEMS_ROW, MIXES_ROW]
    table = summarize(runs, ["stemscribe", "basic-pitch"])
    assert table["bass"]["stemscribe"]["rtf"] == pytest.approx(30.0)
    assert table[MIXES_ROW]["basic-pitch"]["rtf"] == pytest.approx(30.0)
    rows = {r[0]: r for r in table_rows(table, ["stemscribe", "basic-pitch"])}
    assert rows["bass"][2] == "1.000 / 0.667"
    assert rows[MIXES_ROW][2] == "0.000 / 1.000"
    assert rows["bass"][4] == "– / –"  # no drums in a bass stem
    assert rows["bass"][6] == "30x / 15x"
    meta = {
        "command": "python -m bench.run",
        "items": 2,
        "audio_s": 60.0,
        "cpus": 2,
        "drums": "auto",
        "date": "today",
    }
    text = markdown(table, ["stemscribe", "basic-pitch"], meta)
    assert "| bass | 1 | 1.000 / 0.667 |" in text


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("fluidsynth") is None or shutil.which("mma") is None,
    reason="needs the fluidsynth and mma Debian packages",
)
def test_quick_plan_renders_audio_that_matches_its_truth(tmp_path: Path) -> None:
    import soundfile as sf

    pytest.importorskip("music21", reason="music21 (the bench extra) is not installed")
    songs = build.plan_songs(build.DEFAULT_SEED, tmp_path, quick_only=True)
    assert [s.source for s in songs] == list(build.PLAN[: build.QUICK_SONGS])
    again = build.plan_songs(build.DEFAULT_SEED, tmp_path, quick_only=True)
    assert [truth_notes(s.parts) for s in songs] == [truth_notes(s.parts) for s in again]

    song = songs[0]
    entries = build.write_song(song, tmp_path / song.song_id)
    stems = [e["stem"] for e in entries]
    assert stems[0] == "mix" and "drums" in stems and "vocals" in stems
    for e in entries:
        audio, sr = sf.read(str(tmp_path / e["audio"]))
        assert sr == build.SAMPLE_RATE and len(audio) == int(song.duration * sr)
        assert 0.01 < np.abs(audio).max() <= build.PEAK + 1e-3
        truth = json.loads((tmp_path / e["truth"]).read_text())
        assert truth["notes"] and all(0 <= n["start"] < n["end"] <= song.duration for n in truth["notes"])
        if e["stem"] != "mix":
            assert {n["family"] for n in truth["notes"]} == {e["stem"]}
        # the audio is silent where the first note has not started yet, and sounds right after it
        first = min(n["start"] for n in truth["notes"])
        mono = np.abs(audio).mean(axis=1)
        if first > 0.2:
            assert mono[: int((first - 0.05) * sr)].max() < 1e-3
        assert mono[int(first * sr) : int((first + 0.5) * sr)].max() > 1e-3


# ------------------------------------------------------------------------------------- the held-out split


def test_references_keep_auxiliary_percussion_and_programs_112_to_127(tmp_path: Path) -> None:
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    kit = pretty_midi.Instrument(program=0, is_drum=True, name="kit")
    keys = [36, 38, 54, 56, 62, 69, 75, 81, 27, 82]  # kit, tambourine, cowbell, conga, cabasa, claves...
    kit.notes = [pretty_midi.Note(100, k, 0.1 * i, 0.1 * i + 0.05) for i, k in enumerate(keys * 2)]
    woodblock = pretty_midi.Instrument(program=115, name="woodblock")  # melodic-channel percussion
    woodblock.notes = [pretty_midi.Note(90, 60 + i, 0.5 * i, 0.5 * i + 0.2) for i in range(4)]
    fx = pretty_midi.Instrument(program=122, name="seashore")
    fx.notes = [pretty_midi.Note(90, 50, 1.0 * i, 1.0 * i + 0.8) for i in range(3)]
    piano = pretty_midi.Instrument(program=0, name="piano")
    piano.notes = [pretty_midi.Note(80, 60 + i, 0.3 * i, 0.3 * i + 0.2) for i in range(5)]
    pm.instruments = [kit, woodblock, fx, piano]
    path = tmp_path / "song.mid"
    pm.write(str(path))

    parts = cut_window(build.parts_from_midi(path), 0.0, 5.0)
    assert sorted(p.program for p in parts if not p.is_drum) == [0, 115, 122]
    rows = truth_notes(parts)
    assert {r["pitch"] for r in rows if r["is_drum"]} == set(keys)
    high = [r for r in rows if r["program"] >= 112]
    assert len(high) == 7 and all(r["family"] == "drums" and not r["is_drum"] for r in high)

    song = build.Song("00-test", "blupi", "test", parts, 5.0, True)
    stems = dict(build.song_stems(song))
    assert list(stems) == ["mix", "drums", "piano"]
    assert len(stems["mix"]) == 4
    # the drums stem is the drum channel and the percussive programs, as stemscribe's families have it
    assert sorted((p.is_drum, p.program) for p in stems["drums"]) == [(False, 115), (False, 122), (True, 0)]


def test_bass_and_comping_for_drum_machines_follow_the_chords() -> None:
    chords = [(0, False), (9, True), (5, False), (7, False)] * 2
    bass = build.generate_bass(np.random.default_rng(3), key=2, chords=chords, bpm=120.0, low=28, high=50)
    assert bass and all(28 <= n.pitch <= 50 and n.end > n.start for n in bass)
    bar = 2.0
    for n in bass:
        root = (2 + chords[int(n.start // bar)][0]) % 12
        assert (n.pitch - root) % 12 in (0, 7)
    comp = build.generate_comp(np.random.default_rng(3), key=2, chords=chords, bpm=120.0)
    assert comp and all(55 <= n.pitch < 67 for n in comp)
    by_onset: dict[float, set[int]] = {}
    for n in comp:
        by_onset.setdefault(n.start, set()).add(n.pitch % 12)
    assert all(len(pcs) == 3 for pcs in by_onset.values())  # block triads
    assert (
        build.generate_bass(np.random.default_rng(3), key=2, chords=chords, bpm=120.0, low=28, high=50)
        == bass
    )


@pytest.mark.skipif(not build.MMA_LIB.exists(), reason="needs the mma Debian package")
def test_heldout_grooves_are_4_4_main_grooves_of_the_evaluation_only_libraries() -> None:
    import re

    assert set(build.HELDOUT_GROOVES) == {"casio", "kara", "yamaha", "zoom"}
    for lib, specs in build.HELDOUT_GROOVES.items():
        assert len(set(specs)) == len(specs) >= 4
        for spec in specs:
            file, groove = spec.split(":")
            text = (build.MMA_LIB / lib / f"{file}.mma").read_text(errors="replace")
            assert re.search(rf"^\s*defgroove\s+{re.escape(groove)}\b", text, re.I | re.M), spec
            assert re.search(r"^\s*time\s+4(/4)?\s*$", text, re.I | re.M), spec


@pytest.mark.skipif(not build.BLUPI_DIR.exists(), reason="needs planetblupi-music-midi")
def test_heldout_songs_never_overlap_the_dev_split() -> None:
    pytest.importorskip("music21", reason="music21 (the bench extra) is not installed")
    dev = {seed: build.dev_choices(seed) for seed in build.DEV_SEEDS}
    assert [c.source for c in dev[build.DEFAULT_SEED]] == list(build.PLAN)
    for seed in (build.HELDOUT_SEED, 3):
        held = build.heldout_choices(seed)
        assert held == build.heldout_choices(seed)  # deterministic
        assert [c.source for c in held] == list(build.HELDOUT_PLAN)
        grooves = [c.material for c in held if c.source == "mma"]
        libs = [g.split("/")[0] for g in grooves]
        assert set(libs[:4]) == {"casio", "kara", "yamaha", "zoom"}
        assert not {g.split(":")[-1] for g in grooves} & set(build.GROOVES)
        assert len({c.material for c in held}) == len(held)
        for dev_choices in dev.values():
            assert not {c.material for c in held} & {c.material for c in dev_choices}
            dev_sopranos = {build._chorale_info(c.material)[1] for c in dev_choices if c.source == "chorale"}
            for c in held:
                if c.source == "chorale":
                    assert build._chorale_info(c.material)[1] not in dev_sopranos
        # the song ids differ too, so no item of one split can be mistaken for the other's
        dev_tags = {c.tag for choices in dev.values() for c in choices}
        assert not {c.tag for c in held} & dev_tags


def test_split_folders_and_build_cli_defaults(tmp_path: Path) -> None:
    assert build.split_folders("dev", tmp_path) == {"fluidr3": tmp_path}
    assert build.split_folders("heldout", tmp_path) == {
        "fluidr3": tmp_path / "fluidr3",
        "csound": tmp_path / "csound",
    }
    assert build.FONTS["csound"].name == "sf_GMbank.sf2"
    with pytest.raises(SystemExit):
        build.main(["--seed", "3"])  # a seed names one split
    with pytest.raises(ValueError):
        build.split_folders("test")


def test_is_current_knows_split_version_seed_and_plan(tmp_path: Path) -> None:
    m = tmp_path / "manifest.json"
    assert not build.is_current(m, split="dev")
    good = {"version": build.FORMAT_VERSION, "split": "heldout", "seed": 15, "plan": list(build.HELDOUT_PLAN)}
    m.write_text(json.dumps(good))
    assert build.is_current(m, split="heldout") and build.is_current(m, split="heldout", seed=15)
    assert not build.is_current(m, split="heldout", seed=16)
    assert not build.is_current(m, split="dev")
    m.write_text(json.dumps({**good, "version": 1}))
    assert not build.is_current(m, split="heldout")


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not build.SOUNDFONT.exists() or not build.CSOUND_SOUNDFONT.exists(),
    reason="needs fluidsynth, FluidR3_GM and csound's GM bank (csound-soundfont)",
)
def test_one_song_renders_with_both_heldout_fonts(tmp_path: Path) -> None:
    import soundfile as sf

    parts = [
        part([(36 + 18 * (i % 2), 0.25 * i, 0.25 * i + 0.1) for i in range(8)], program=0, is_drum=True),
        part([(60 + i, 0.4 * i, 0.4 * i + 0.3) for i in range(5)], program=0),
        part([(64, 0.5, 1.0), (66, 1.0, 1.5), (68, 1.5, 1.9)], program=115),
    ]
    song = build.Song("00-test", "mma", "test", parts, 2.5, True)
    rendered = {}
    for font, soundfont in build.FONTS.items():
        entries = build.write_song(song, tmp_path / font / song.song_id, soundfont)
        assert [e["stem"] for e in entries] == ["mix", "drums", "piano"]
        for e in entries:
            audio, sr = sf.read(str(tmp_path / font / e["audio"]))
            assert len(audio) == int(2.5 * sr) and np.abs(audio).max() > 0.01
        truth = json.loads((tmp_path / font / "00-test" / "drums.json").read_text())
        assert {n["pitch"] for n in truth["notes"] if n["is_drum"]} == {36, 54}
        assert any(n["program"] == 115 for n in truth["notes"])
        rendered[font] = sf.read(str(tmp_path / font / "00-test" / "mix.flac"))[0]
        assert entries[0]["truth_sha256"]
    # the same notes, two sample sets
    assert not np.allclose(rendered["fluidr3"], rendered["csound"], atol=1e-3)


def test_three_four_melody_fills_three_beat_bars_and_four_four_is_unchanged() -> None:
    chords = [(0, False), (7, False), (9, True), (5, False)] * 4
    kwargs = dict(key=2, scale=MAJOR_SCALE, chords=chords, bpm=120.0, low=60, high=79)
    waltz = generate_melody(np.random.default_rng(1), beats_per_bar=3, **kwargs)  # type: ignore[arg-type]
    beat = 0.5
    assert len(waltz) > 20
    assert max(n.end for n in waltz) <= 16 * 3 * beat
    assert all(a.end <= b.start for a, b in zip(waltz, waltz[1:], strict=False))
    # every bar's notes stay inside the bar
    for n in waltz:
        bar = int(n.start / (3 * beat) + 1e-9)
        assert n.end <= (bar + 1) * 3 * beat + 1e-6
    default = generate_melody(np.random.default_rng(1), **kwargs)  # type: ignore[arg-type]
    assert default == generate_melody(np.random.default_rng(1), beats_per_bar=4, **kwargs)  # type: ignore[arg-type]
    assert max(n.end for n in default) > 16 * 3 * beat


def test_metre_material_grooves_are_standard_library_grooves_of_their_metre() -> None:
    import re

    assert not set(build.TRIPLE_GROOVES) & set(build.LATIN_GROOVES)
    texts = [f.read_text(errors="replace") for f in sorted(build.MMA_STDLIB.glob("*.mma"))]
    for grooves, time in ((build.TRIPLE_GROOVES, "3"), (build.LATIN_GROOVES, "4")):
        for groove in grooves:
            [text] = [t for t in texts if re.search(rf"^\s*defgroove\s+{groove}\b", t, re.I | re.M)]
            assert re.search(rf"^\s*time\s+{time}\s*$", text, re.I | re.M), groove


@pytest.mark.skipif(not build.BLUPI_DIR.exists(), reason="needs planetblupi-music-midi")
def test_metre_material_is_waltzes_latin_grooves_and_new_three_four_chorales() -> None:
    pytest.importorskip("music21", reason="music21 (the bench extra) is not installed")
    choices = build.metre_choices(1)
    assert choices == build.metre_choices(1)
    assert [c.source for c in choices] == list(build.METRE_PLAN)
    mma = [c for c in choices if c.source == "mma"]
    assert [c.beats_per_bar for c in mma] == [3, 4] * (len(mma) // 2) + [3] * (len(mma) % 2)
    assert all(c.material in build.TRIPLE_GROOVES for c in mma if c.beats_per_bar == 3)
    assert all(c.material in build.LATIN_GROOVES for c in mma if c.beats_per_bar == 4)
    used = build.heldout_choices(build.HELDOUT_SEED) + [
        c for s in build.DEV_SEEDS for c in build.dev_choices(s)
    ]
    used_sopranos = {build._chorale_info(c.material)[1] for c in used if c.source == "chorale"}
    chorales = [c.material for c in choices if c.source == "chorale"]
    assert len(set(chorales)) == len(chorales) == build.METRE_PLAN.count("chorale")
    for c in chorales:
        assert build.chorale_signature(c) == "3/4"
        assert build._chorale_info(c)[1] not in used_sopranos
    latin = build.latin_choices(3)
    assert [c.source for c in latin] == list(build.LATIN_PLAN)
    assert all(c.material in build.LATIN_GROOVES and c.beats_per_bar == 4 for c in latin)


def test_materials_are_dev_only_and_recorded_in_the_manifest(tmp_path: Path) -> None:
    assert build.split_plan("dev") == build.PLAN
    assert build.split_plan("dev", "metre") == build.METRE_PLAN
    assert build.split_plan("heldout") == build.HELDOUT_PLAN
    with pytest.raises(ValueError):
        build.split_plan("heldout", "metre")
    with pytest.raises(ValueError):
        build.split_plan("dev", "jazz")
    with pytest.raises(SystemExit):
        build.main(["--material", "metre"])  # its own dev folder
    m = tmp_path / "manifest.json"
    metre = {"version": build.FORMAT_VERSION, "split": "dev", "material": "metre", "seed": 1}
    m.write_text(json.dumps({**metre, "plan": list(build.METRE_PLAN)}))
    assert build.is_current(m, split="dev", seed=1, material="metre")
    assert not build.is_current(m, split="dev", seed=1)
    m.write_text(
        json.dumps({"version": build.FORMAT_VERSION, "split": "dev", "seed": 1, "plan": list(build.PLAN)})
    )
    assert build.is_current(m, split="dev", seed=1) and not build.is_current(m, split="dev", material="metre")


def test_sheet_reference_chords_follow_three_four_bars(tmp_path: Path) -> None:
    from bench.sheet import _mma_chords

    chart = tmp_path / "song.mma"
    chart.write_text("Tempo 120\nGroove Waltz\n1 C\n2 G\n3 Am\n4 F\n", encoding="utf-8")
    assert _mma_chords(chart, 120.0, 3)[:3] == [(0.0, 1.5, "G:maj"), (1.5, 3.0, "A:min"), (3.0, 4.5, "F:maj")]
    assert _mma_chords(chart, 120.0)[0] == (0.0, 2.0, "G:maj")


def test_sheet_scores_an_off_beat_grid_zero_beat_f1_but_full_any_level_continuity() -> None:
    from bench.sheet import Reference, Scores, score_one
    from stemscribe.score.analysis import ScoreAnalysis, TimeSignature

    ref = Reference("song", "blupi", [0.5 * i for i in range(1, 40)], 120.0)
    est = ScoreAnalysis(TimeSignature(4, 4), (), None, (), tuple(0.25 + 0.5 * i for i in range(41)), 0)
    on = ScoreAnalysis(TimeSignature(4, 4), (), None, (), tuple(0.5 * i for i in range(41)), 0)
    scores = Scores()
    off_row, on_row = score_one(ref, est, scores), score_one(ref, on, scores)
    assert off_row["beat_f1"] == 0.0 and off_row["beat_amlt"] > 0.9
    assert on_row["beat_f1"] == 1.0 and on_row["beat_amlt"] == 1.0
    assert scores.beat_any_level == [off_row["beat_amlt"], on_row["beat_amlt"]]


def test_a_chart_whose_cycle_is_the_same_in_the_relative_key_names_that_key(tmp_path: Path) -> None:
    from bench.sheet import same_cycle_key

    chart = tmp_path / "song.mma"
    # Eb major vi-IV-I-V is C minor i-VI-III-VII, bar for bar
    chart.write_text("Tempo 100\nGroove X\n1 Cm\n2 Ab\n3 Eb\n4 Bb\n5 Cm\n6 Ab\n", encoding="utf-8")
    assert same_cycle_key(chart, "Eb major") == "C minor"
    # B minor i-VI-III-VII is D major vi-IV-I-V
    chart.write_text("1 Bm\n2 G\n3 D\n4 A\n5 Bm\n", encoding="utf-8")
    assert same_cycle_key(chart, "B minor") == "D major"
    # I-V-vi-IV is no minor progression's cycle on the relative tonic
    chart.write_text("1 C\n2 G\n3 Am\n4 F\n", encoding="utf-8")
    assert same_cycle_key(chart, "C major") is None


def test_sheet_pools_every_heldout_split_given_after_the_dev_one(tmp_path: Path) -> None:
    from bench.sheet import _folders

    for folder in ("dev", "h15/fluidr3", "h15/csound", "h16/csound"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "manifest.json").write_text("{}", encoding="utf-8")
    assert _folders(tmp_path / "dev", [tmp_path / "h15", tmp_path / "h16", tmp_path / "none"]) == [
        ("dev", "fluidr3", tmp_path / "dev"),
        ("heldout", "fluidr3", tmp_path / "h15/fluidr3"),
        ("heldout", "csound", tmp_path / "h15/csound"),
        ("heldout", "csound", tmp_path / "h16/csound"),
    ]
