"""The training code: generator determinism, targets, scoring, and the ONNX export path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stemscribe.result import NoteEvent
from stemscribe.transcription.drum_model import FPS, N_CLASSES, SAMPLE_RATE, DrumModel
from stemscribe.transcription.drums import DRUM_CLASS_NAMES, DRUM_CLASSES, KEY_TO_CLASS
from training.drums.scoring import onsets_by_class, score_onsets

TIMGM = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")


def test_scoring_matches_within_50_ms_per_class() -> None:
    ref = [[1.0, 2.0], [1.5]] + [[] for _ in range(N_CLASSES - 2)]
    est = [[1.04, 2.2], [1.0]] + [[] for _ in range(N_CLASSES - 2)]
    counts = score_onsets(ref, est)
    assert counts.tp.tolist()[:2] == [1, 0]
    assert counts.fp.sum() == 2 and counts.fn.sum() == 2
    p, r, f = counts.micro()
    assert (p, r) == (1 / 3, 1 / 3)
    assert f == pytest.approx(1 / 3)


def test_onsets_fold_gm_keys_onto_classes() -> None:
    notes = [
        NoteEvent(35, 0.1, 0.2, 0.5),
        NoteEvent(40, 0.2, 0.3, 0.5),
        NoteEvent(44, 0.3, 0.4, 0.5),
        NoteEvent(56, 0.4, 0.5, 0.5),
    ]
    by_class = onsets_by_class(notes)
    assert by_class[DRUM_CLASSES.index(36)] == [0.1]
    assert by_class[DRUM_CLASSES.index(38)] == [0.2]
    assert by_class[DRUM_CLASSES.index(42)] == [0.3]  # the pedal hat counts as closed
    assert by_class[DRUM_CLASSES.index(56)] == [0.4]  # the cowbell is its own class
    assert onsets_by_class([NoteEvent(28, 0.1, 0.2, 0.5)]) == [[] for _ in DRUM_CLASSES]  # no class


def test_frame_targets() -> None:
    pytest.importorskip("torch", reason="training needs torch (the separation extra)")
    from training.drums.train import frame_targets

    labels = np.array([[0, 1.0, 2, 0.5], [0, 1.5, 0, 1.0]])
    onset, vel, mask = frame_targets(labels, 50, 200)
    f = int(round(1.0 * FPS)) - 50
    assert (
        onset[f, 2] == 1.0 and onset[f - 1, 2] == pytest.approx(0.4) and onset[f + 1, 2] == pytest.approx(0.4)
    )
    assert vel[f, 2] == 0.5 and mask[f, 2] == 1.0
    assert onset.sum() == pytest.approx(2 * 1.8)


def test_generator_is_deterministic_and_labels_are_sane() -> None:
    pytest.importorskip("tinysoundfont", reason="the data generator needs tinysoundfont")
    if not TIMGM.is_file():
        pytest.skip("TimGM6mb.sf2 missing (Debian: timgm6mb-soundfont)")
    from training.drums.data import ClipSpec, Renderer, make_clip

    renderer = Renderer((TIMGM,))
    for index, mode in ((3, "random"), (4, "mix")):
        spec = ClipSpec("train" if mode == "random" else "test", index, 7, 4.0, mode)
        a1, l1 = make_clip(spec, renderer, [])
        a2, l2 = make_clip(spec, renderer, [])
        np.testing.assert_array_equal(a1, a2)
        assert l1 == l2
        assert a1.shape == (4 * SAMPLE_RATE,) and a1.dtype == np.float32
        assert np.isfinite(a1).all() and 0 < np.abs(a1).max() <= 1.0
        assert l1, "a clip without drum labels"
        for t, c, v in l1:
            assert 0 <= t < 4.0 and 0 <= c < N_CLASSES and 0 < v <= 1


def test_keys_a_kit_leaves_empty_are_played_and_labelled_as_a_sounding_alternative() -> None:
    pytest.importorskip("tinysoundfont", reason="the data generator needs tinysoundfont")
    if not TIMGM.is_file():
        pytest.skip("TimGM6mb.sf2 missing (Debian: timgm6mb-soundfont)")
    from training.drums.data import KEY_TO_INDEX, ClipSpec, Renderer, make_clip

    renderer = Renderer((TIMGM,))
    assert renderer.fonts and all(bank == 128 for _, bank, _ in renderer.kits)
    standard = next(k for k in renderer.kits if k[2] == 0)
    assert renderer.sounding_keys(standard) == frozenset(KEY_TO_INDEX)  # a full GM kit
    kick = DRUM_CLASSES.index(36)
    spec = ClipSpec("test", 4, 7, 4.0, "none")
    _, labels = make_clip(spec, renderer, [])
    assert any(c == kick for _, c, _ in labels)
    # Pretend every kit lacks key 36: kicks move to 35, the other kick key, and stay labelled.
    for kit in renderer.kits:
        renderer._sounding[kit] = frozenset(KEY_TO_INDEX) - {36}
    _, moved = make_clip(spec, renderer, [])
    assert [(t, c) for t, c, _ in moved] == [(t, c) for t, c, _ in labels]
    # With neither kick key sounding, no kick is labelled that nobody could hear.
    for kit in renderer.kits:
        renderer._sounding[kit] = frozenset(KEY_TO_INDEX) - {35, 36}
    _, none = make_clip(spec, renderer, [])
    assert none and not any(c == kick for _, c, _ in none)


def test_splits_render_with_their_fonts_and_extra_fonts_only_on_request(monkeypatch) -> None:
    from training.drums import data

    assert data.split_soundfonts("test") == (data.HELD_OUT_SOUNDFONT,)
    assert data.split_soundfonts("test", extra_fonts=True) == (data.HELD_OUT_SOUNDFONT,)
    assert data.split_soundfonts("train") == data.TRAIN_SOUNDFONTS == data.split_soundfonts("valid")
    installed = data.EXTRA_TRAIN_SOUNDFONTS[0]
    monkeypatch.setattr(Path, "is_file", lambda self: self == installed)  # only one extra is installed
    assert data.split_soundfonts("train", extra_fonts=True) == data.TRAIN_SOUNDFONTS + (installed,)


def test_a_kit_is_drawn_font_first_when_a_split_has_several_fonts() -> None:
    pytest.importorskip("tinysoundfont", reason="the data generator needs tinysoundfont")
    from training.drums.data import HELD_OUT_SOUNDFONT, Renderer

    for font in (TIMGM, HELD_OUT_SOUNDFONT):
        if not font.is_file():
            pytest.skip(f"{font} missing (Debian: timgm6mb-soundfont, fluid-soundfont-gm)")
    renderer = Renderer((TIMGM, HELD_OUT_SOUNDFONT))
    small = sum(1 for sfid, _, _ in renderer.kits if sfid == 0)
    assert small < len(renderer.kits) / 3  # TimGM6mb holds far fewer kits than FluidR3
    rng = np.random.default_rng(0)
    picks = [renderer.pick_kit(rng) for _ in range(400)]
    assert set(picks) <= set(renderer.kits)
    share = sum(1 for sfid, _, _ in picks if sfid == 0) / len(picks)
    assert 0.4 < share < 0.6  # each font about half the time, not in proportion to its kits


def test_export_round_trip(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch", reason="training needs torch (the separation extra)")
    pytest.importorskip("onnx", reason="the export needs the onnx package")
    from training.drums.export import export
    from training.drums.model import DrumNet

    torch.manual_seed(0)
    net = DrumNet(width=16, hidden=8)
    torch.save(
        {"state": net.state_dict(), "config": {"width": 16, "hidden": 8}, "step": 1},
        tmp_path / "checkpoint.pt",
    )
    thresholds = [0.3 + 0.02 * i for i in range(N_CLASSES)]
    (tmp_path / "thresholds.json").write_text(json.dumps({"thresholds": thresholds}))
    out = tmp_path / "weights" / "drums.onnx"
    digest = export(tmp_path, out)
    assert (out.parent / "drums.onnx.sha256").read_text().split()[0] == digest
    model = DrumModel(out)
    assert model.thresholds == pytest.approx(thresholds)
    assert model.classes == DRUM_CLASSES
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["classes"]) == list(DRUM_CLASSES)
    assert json.loads(meta["class_names"]) == [DRUM_CLASS_NAMES[k] for k in DRUM_CLASSES]
    members = json.loads(meta["class_members"])
    assert sorted(k for keys in members.values() for k in keys if 35 <= k <= 81) == list(range(35, 82))
    x = np.random.default_rng(0).standard_normal(SAMPLE_RATE * 2).astype(np.float32) * 0.1
    onset, velocity = model.activations(x, SAMPLE_RATE)
    assert onset.shape == velocity.shape == (1 + x.size // 220, N_CLASSES)
    assert ((onset >= 0) & (onset <= 1)).all() and ((velocity >= 0) & (velocity <= 1)).all()
    # Chunked inference agrees with one pass over the whole input.
    net.eval()
    from stemscribe.transcription.drum_model import log_mel

    with torch.no_grad():
        logits, _ = net(torch.from_numpy(log_mel(x))[None])
    np.testing.assert_allclose(onset, torch.sigmoid(logits)[0].numpy(), atol=1e-4)


def test_labels_are_the_played_notes_classes() -> None:
    """Every labelled hit of a key with a class becomes a label of that class at the time it sounds;
    distractors (keys of no class, or hits marked unlabelled) are played and not labelled."""
    from training.drums.data import DRUM_CHANNEL, place_drums

    keys = list(range(27, 88))
    drums = [(0.5 + 0.1 * i, k, 100, 1) for i, k in enumerate(keys)] + [(9.0, 38, 30, 0)]  # a flam
    sounding = frozenset(keys) - {37}  # this kit has no side stick
    events, labels = place_drums(drums, t0=0.3, total=10.0, pre=1.0, sounding=sounding)
    played = {(round(t, 6), k) for t, _, _, k, _ in events}
    assert all(ch == DRUM_CHANNEL and on == 1 for _, on, ch, _, _ in events)
    assert (round(9.0 - 0.3, 6), 38) in played  # the unlabelled flam sounds
    expected = []
    for t, k, _, lab in drums:
        rt = t - 0.3
        if k == 37:
            k = 38  # the side stick is played as the first sounding key of its class (snare)
            assert (round(rt, 6), 38) in played
        if lab and k in KEY_TO_CLASS and rt >= 1.0:
            assert (round(rt, 6), k) in played
            expected.append((round(rt - 1.0, 6), DRUM_CLASSES.index(KEY_TO_CLASS[k])))
    assert sorted((round(t, 6), c) for t, c, _ in labels) == sorted(expected)
    classes = {DRUM_CLASSES[c] for _, c, _ in labels}
    assert {54, 56, 63, 64, 65, 70, 75, 81} <= classes  # the auxiliary percussion is labelled


def test_unisons_of_a_class_merge() -> None:
    from training.drums.data import merge_unisons

    labels = [(1.0, 1, 0.5), (1.01, 1, 0.9), (1.0, 2, 0.4), (1.1, 1, 0.3)]
    assert merge_unisons(labels) == [(1.0, 1, 0.9), (1.0, 2, 0.4), (1.1, 1, 0.3)]


def test_generated_patterns_play_labelled_percussion_parts() -> None:
    from training.drums.data import PERC_KEYS, generate_pattern

    seen: set[int] = set()
    for seed in range(60):
        part = generate_pattern(np.random.default_rng(seed))
        for key in set(PERC_KEYS.values()) - {39}:
            n = sum(1 for _, k, _, lab in part.drums if k == key and lab)
            assert n <= 13 * part.duration  # never denser than 16ths at 190 BPM
            if n:
                seen.add(KEY_TO_CLASS[key])
        for t, k, v, lab in part.drums:
            assert 0 <= t and 1 <= v <= 127
            assert lab or k not in KEY_TO_CLASS or v < 80  # unlabelled: no class, or a flam's grace note
    aux = set(DRUM_CLASSES[9:])
    assert len(seen & aux) >= 10, sorted(aux - seen)


def test_warm_start_reproduces_the_exported_network(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch", reason="training needs torch (the separation extra)")
    pytest.importorskip("onnx", reason="the export needs the onnx package")
    from training.drums.export import export
    from training.drums.model import DrumNet
    from training.drums.warm_start import net_from_onnx

    torch.manual_seed(1)
    net = DrumNet(width=16, hidden=8)
    with torch.no_grad():  # batch norms that are not the identity, as after training
        for bn in (net.bn1, net.bn2):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    torch.save(
        {"state": net.state_dict(), "config": {"width": 16, "hidden": 8}, "step": 1},
        tmp_path / "checkpoint.pt",
    )
    (tmp_path / "thresholds.json").write_text(json.dumps({"thresholds": [0.5] * N_CLASSES}))
    export(tmp_path, tmp_path / "drums.onnx")
    rng = np.random.default_rng(0)
    mel = (rng.standard_normal((600, 80)) * 2 - 6).astype(np.float32)
    warm, kept = net_from_onnx(tmp_path / "drums.onnx", mel)
    assert kept == list(DRUM_CLASSES)
    net.eval()
    warm.eval()
    with torch.no_grad():
        a, va = net(torch.from_numpy(mel[None]))
        b, vb = warm(torch.from_numpy(mel[None]))
    np.testing.assert_allclose(torch.sigmoid(a).numpy(), torch.sigmoid(b).numpy(), atol=1e-4)
    np.testing.assert_allclose(va.numpy(), vb.numpy(), atol=1e-4)


def test_a_split_renders_in_parts_and_an_interrupted_run_resumes(tmp_path: Path, monkeypatch) -> None:
    """Parts saved as they complete; a rerun renders only the missing ones, and the joined split is the
    same as one rendered in a single part."""
    pytest.importorskip("tinysoundfont", reason="the data generator needs tinysoundfont")
    if not TIMGM.is_file():
        pytest.skip("TimGM6mb.sf2 missing (Debian: timgm6mb-soundfont)")
    from training.drums import data

    monkeypatch.setattr(data, "split_soundfonts", lambda split, extra_fonts=False: (TIMGM,))
    specs = [data.ClipSpec("valid", i, 5, 2.0, "none" if i % 2 else "mix") for i in range(5)]
    data.generate_split(tmp_path / "whole", "valid", specs, [], 1)
    monkeypatch.setattr(data, "PART_CLIPS", 2)
    parts = data.render_parts(tmp_path / "parts", specs, 1, ((TIMGM,), [], False))
    assert len(parts) == 3 and all(p.is_file() for p in parts)
    stamp = parts[0].stat().st_mtime_ns
    parts[1].unlink()  # interrupted before the second part was saved
    data.render_parts(tmp_path / "parts", specs, 1, ((TIMGM,), [], False))
    assert parts[1].is_file() and parts[0].stat().st_mtime_ns == stamp  # only the missing part rendered
    (tmp_path / "split").mkdir()
    (tmp_path / "parts").rename(tmp_path / "split" / "parts")
    data.generate_split(tmp_path / "split", "valid", specs, [], 1)
    assert not (tmp_path / "split" / "parts").exists()
    for name in ("features.npy", "clips.npy", "labels.npy", "audio.npy"):
        np.testing.assert_array_equal(np.load(tmp_path / "split" / name), np.load(tmp_path / "whole" / name))
    clips = np.load(tmp_path / "whole" / "clips.npy")
    assert clips[:, 2].tolist() == [1, 0, 1, 0, 1] and (np.diff(clips[:, 0]) == clips[:-1, 1]).all()
    labels = np.load(tmp_path / "whole" / "labels.npy")
    assert set(labels[:, 0].astype(int)) <= set(range(5)) and len(labels)
