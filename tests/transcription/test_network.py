"""The transcription network: features, labels, the ONNX weights' loading and checks, training and resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stemscribe.errors import ModelError
from stemscribe.transcription import network as nw
from stemscribe.transcription.notes import DecodeOptions, NoteArrays, frame_loudness
from stemscribe.transcription.pitch_model import (
    MIDI_OFFSET,
    N_PITCHES,
    Posteriors,
    frame_times,
    n_output_frames,
)
from stemscribe.transcription.timbre import TIMBRE_FAMILIES
from tests.training.transcriber.judge import record_note_ons

SR = 22050


def _sine(pitch: float, seconds: float, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    return (amp * sum(0.5**k * np.sin(2 * np.pi * f0 * (k + 1) * t) for k in range(4))).astype(np.float32)


def test_harmonic_stack_peaks_at_the_played_pitch() -> None:
    x = _sine(69, 1.0)
    n = n_output_frames(len(x))
    mags = nw.spectrum_magnitudes(x, np.arange(n))
    assert mags.shape == (n, len(nw.HARMONICS), N_PITCHES)
    mid = mags[n // 2]
    h1 = list(nw.HARMONICS).index(1.0)
    assert int(np.argmax(mid[h1])) == 69 - MIDI_OFFSET
    # The second harmonic of A4 is the fundamental of A5: the stack at A4 reads it at h=2.
    h2 = list(nw.HARMONICS).index(2.0)
    assert mid[h2, 69 - MIDI_OFFSET] > 10 * mid[h2, 70 - MIDI_OFFSET]


def test_spectrum_frames_follow_basic_pitchs_grid() -> None:
    """A click at a frame's sample position reads loudest in that frame (the grid is not uniform)."""
    n = 600
    target = 500  # past the first window, where a uniform grid would be off by several frames
    x = np.zeros(int(n * 256 + SR), np.float32)
    pos = int(round(frame_times([target])[0] * SR))
    x[pos] = 1.0
    mags = nw.spectrum_magnitudes(x, np.arange(n), fundamentals_only=True)
    assert mags.shape == (n, 1, N_PITCHES)
    assert abs(int(np.argmax(mags[:, 0, 60])) - target) <= 1


def test_network_input_channels_and_range() -> None:
    x = _sine(60, 0.5)
    n = n_output_frames(len(x))
    post = Posteriors(
        np.full((n, 88), 0.25, np.float32), np.zeros((n, 88), np.float32), np.zeros((n, 0), np.float32)
    )
    mags = nw.spectrum_magnitudes(x, np.arange(n))
    inp = nw.network_input(post, mags, nw.song_reference(x, n))
    assert inp.shape == (nw.N_CHANNELS, n, N_PITCHES) and inp.dtype == np.float32
    assert np.all(inp[0] == 0.25) and np.all(inp[1] == 0.0)
    assert inp[2:].max() <= nw._CEIL / nw._SCALE + 1e-6
    assert inp[2:].min() >= nw._FLOOR / nw._SCALE - 1e-6
    # Level-invariant: the same audio 20 dB quieter gives the same input.
    mags_q = nw.spectrum_magnitudes(x * 0.1, np.arange(n))
    inp_q = nw.network_input(post, mags_q, nw.song_reference(x * 0.1, n))
    assert np.abs(inp_q - inp).max() < 0.01


def _fake_posteriors(n: int, family: int, notes: list[tuple[int, int, int]]) -> nw.FamilyPosteriors:
    onset = np.zeros((n, 9, 88), np.float32)
    frame = np.zeros_like(onset)
    vel = np.full_like(onset, 0.3)
    for s, e, p in notes:
        onset[s, family, p - MIDI_OFFSET] = 0.9
        frame[s:e, family, p - MIDI_OFFSET] = 0.8
        vel[s, family, p - MIDI_OFFSET] = 0.75
    return nw.FamilyPosteriors(onset, frame, vel)


def test_family_notes_decode_one_family_with_its_velocities() -> None:
    fp = _fake_posteriors(200, 4, [(10, 60, 60), (80, 150, 67)])
    loud = np.ones(200, np.float32)
    notes = nw.family_notes(fp, 4, loud, DecodeOptions(onset_threshold=0.5, frame_threshold=0.4))
    assert sorted(notes.pitch.tolist()) == [60, 67]
    assert np.allclose(notes.velocity, 0.75)
    assert len(nw.family_notes(fp, 0, loud, DecodeOptions())) == 0


def test_note_families_blend() -> None:
    k = len(TIMBRE_FAMILIES)
    shares = np.full((3, k), 0.01, np.float32)
    shares[:, 0] = 0.9
    shares[2, 0], shares[2, 3] = 0.40, 0.45
    heard = np.full((3, k), 1.0 / k, np.float32)
    plain = nw.note_families(shares, heard, blend=0.5)
    np.testing.assert_allclose(plain.sum(axis=1), 1.0, rtol=1e-5)
    assert plain.argmax(axis=1).tolist() == [0, 0, 3]  # a flat classifier leaves the network's call
    assert nw.note_families(shares, None, blend=0.5).argmax(axis=1).tolist() == [0, 0, 3]
    sure = heard.copy()
    sure[2] = 0.01
    sure[2, 5] = 0.9
    assert nw.note_families(shares, sure, blend=0.2)[2].argmax() == 5  # a confident classifier wins
    assert nw.note_families(shares, sure, blend=0.9)[2].argmax() == 3  # ... unless the network weighs most
    assert nw.note_families(shares[:0], heard[:0], blend=0.5).shape == (0, k)


def test_to_float16_is_numpys_conversion_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    step = 2.0**-24  # float16's subnormal step
    values = np.concatenate(
        [
            rng.uniform(0, 1, 20_000),
            np.exp(-rng.uniform(0, 30, 20_000)),  # down through float16's subnormals to zero
            (np.arange(1100) + 0.5) * step,  # ties: half way between two subnormals
            np.arange(1100) * step,
            [0.0, 2.0**-14, np.nextafter(2.0**-14, 0.0), 2.0**-25, 60000.0],
        ]
    ).astype(np.float32)
    values = np.concatenate([values, -values]).reshape(2, -1, 5)[:, ::3]  # signed, and strided
    got = nw.to_float16(values)
    assert got.dtype == np.float16 and got.shape == values.shape
    assert np.array_equal(got.view(np.uint16), values.astype(np.float16).view(np.uint16))


def test_as_float32_reads_every_float16_exactly() -> None:
    halves = np.arange(1 << 16, dtype=np.uint16).view(np.float16).reshape(256, 256)
    got = nw.as_float32(halves[:, ::2])
    want = halves[:, ::2].astype(np.float32)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    assert np.array_equal(got, want, equal_nan=True)
    x = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]
    assert nw.as_float32(x).flags.c_contiguous and np.array_equal(nw.as_float32(x), x)


def test_spectrum_of_any_frames_is_the_whole_songs_rows() -> None:
    """Frames in runs, out of order, repeated or past the end read what a whole-song pass reads."""
    x = _sine(57, 4.0) + _sine(76, 4.0, 0.1)
    n = n_output_frames(len(x))
    whole = nw.spectrum_magnitudes(x, np.arange(n))
    frames = np.array([300, 5, 6, 7, 141, 142, 143, 143, 2, n - 1, n + 40, n + 41])
    part = nw.spectrum_magnitudes(x, frames)
    assert np.array_equal(part[:-2], whole[frames[:-2]])
    # Past the audio a frame is centred on its end: what a plain FFT there gives.
    assert np.array_equal(part[-1], part[-2])
    padded = np.concatenate([x, np.zeros(nw.N_FFT, np.float32)])[
        len(x) - nw.N_FFT // 2 : len(x) + nw.N_FFT // 2
    ]
    mags = np.abs(np.fft.rfft(padded * np.hanning(nw.N_FFT + 1)[:-1]))
    lower, frac = nw._LOWER.reshape(-1, 88), nw._FRAC.reshape(-1, 88)
    direct = np.where(lower > 0, mags[lower] * (1 - frac) + mags[lower + 1] * frac, 0.0)
    np.testing.assert_allclose(part[-1], direct, rtol=1e-3, atol=1e-4)
    fundamentals = nw.spectrum_magnitudes(x, frames, fundamentals_only=True)
    assert np.array_equal(fundamentals[:, 0], part[:, list(nw.HARMONICS).index(1.0)])
    assert nw.spectrum_magnitudes(x, np.arange(0)).shape == (0, len(nw.HARMONICS), 88)


def test_song_spectrum_holds_the_song_reference() -> None:
    x = _sine(64, 2.0)
    n = n_output_frames(len(x))
    spectrum = nw.song_spectrum(x, n)
    assert spectrum.n_frames == n and spectrum.reference == nw.song_reference(x, n)
    assert np.array_equal(spectrum.stack(0, n), nw.spectrum_magnitudes(x, np.arange(n)))
    assert np.array_equal(spectrum.stack(40, 90), nw.spectrum_magnitudes(x, np.arange(40, 90)))
    assert nw.song_spectrum(x[:0], 0).reference == nw.song_reference(x[:0], 0)


def _random_family_posteriors(n: int, seed: int = 0) -> nw.FamilyPosteriors:
    rng = np.random.default_rng(seed)
    arrays = (np.exp(-rng.uniform(0, 12, (n, 9, 88))).astype(np.float16) for _ in range(3))
    return nw.FamilyPosteriors(*arrays)


def test_pitch_posteriors_sum_the_families() -> None:
    fp = _random_family_posteriors(5000)  # several blocks
    got = nw.pitch_posteriors(fp)
    # The definition, spelled directly.
    onset = np.minimum(fp.onset.sum(axis=1, keepdims=True, dtype=np.float32), 1.0)
    frame = np.minimum(fp.frame.sum(axis=1, keepdims=True, dtype=np.float32), 1.0)
    best = fp.frame.argmax(axis=1)[:, None, :]
    velocity = np.take_along_axis(fp.velocity, best, axis=1).astype(np.float32)
    for a, b in ((got.onset, onset), (got.frame, frame), (got.velocity, velocity)):
        assert a.dtype == np.float32 and a.shape == (5000, 1, 88) and np.array_equal(a, b)


def test_note_family_shares_sum_each_notes_frames() -> None:
    n = 400
    fp = _random_family_posteriors(n, seed=1)
    notes = NoteArrays(
        np.array([0, 10, 399, 50, 7]),
        np.array([5, 11, 420, 50, 300]),  # one past the end, one of no length
        np.array([21, 60, 108, 64, 40]),
        np.ones(5, np.float32),
    )
    got = nw.note_family_shares(fp, notes)
    for i, (s, e, p) in enumerate(zip(notes.start, notes.end, notes.pitch, strict=True)):
        a = min(s, n - 1)
        b = min(max(e, a + 1), n)
        total = fp.frame[a:b, :, p - MIDI_OFFSET].sum(axis=0, dtype=np.float32)
        assert np.array_equal(got[i], total / total.sum())
    silent = nw.FamilyPosteriors(fp.onset, np.zeros_like(fp.frame), fp.velocity)
    assert np.allclose(nw.note_family_shares(silent, notes), 1 / 9)
    assert nw.note_family_shares(fp, NoteArrays.empty()).shape == (0, 9)


# ---------------------------------------------------------------------------------------------
# Training side (torch)

torch = pytest.importorskip("torch", reason="training needs torch (the train extra)")

from training.transcriber import data as tdata  # noqa: E402
from training.transcriber import train as ttrain  # noqa: E402
from training.transcriber.export import calibration_inputs, export_net  # noqa: E402
from training.transcriber.model import (  # noqa: E402
    N_RAW,
    NoteNet,
    family_posteriors,
    fused_family_posteriors,
)


def test_targets_put_onsets_and_frames_where_the_notes_are() -> None:
    n = 400
    times = frame_times(np.arange(n))
    notes = np.array(
        [[times[50], times[90], 60, 100, 2], [times[120] + 0.002, times[121], 21, 64, 8]], np.float32
    )
    onset, frame, vel = ttrain.targets(notes, n, 0, n)
    assert onset.shape == (n, 9, 88)
    assert onset[50, 2, 60 - MIDI_OFFSET] == 1 and onset.sum() == 2
    assert frame[50:90, 2, 60 - MIDI_OFFSET].all() and frame[90:, 2, 60 - MIDI_OFFSET].sum() == 0
    assert onset[120, 8, 0] == 1 and frame[120, 8, 0] == 1  # a one-frame note still sounds
    assert vel[50, 2, 60 - MIDI_OFFSET] == pytest.approx(100 / 127)
    # A window: only what falls inside it.
    onset_w, frame_w, _ = ttrain.targets(notes, n, 60, 100)
    assert onset_w.sum() == 0 and frame_w[:30, 2, 60 - MIDI_OFFSET].all()


def _synthetic_clip(rng: np.random.Generator, seconds: float) -> dict[str, np.ndarray]:
    audio = np.zeros(int(seconds * SR), np.float32)
    notes = []
    for _ in range(6):
        p = int(rng.integers(40, 80))
        s = float(rng.uniform(0, seconds - 0.6))
        tone = _sine(p, 0.5, 0.1)
        audio[int(s * SR) : int(s * SR) + len(tone)] += tone
        notes.append((s, s + 0.5, p, int(rng.integers(40, 120)), int(rng.integers(9))))
    n = n_output_frames(len(audio))
    return {
        "audio": np.round(audio * 32767).astype(np.int16),
        "note": rng.integers(0, 255, (n, 88)).astype(np.uint8),
        "onset": rng.integers(0, 255, (n, 88)).astype(np.uint8),
        "notes": np.array(notes, np.float32),
        "kind": np.int64(2),
    }


@pytest.fixture()
def shards(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    for name in ("shard-00000", "shard-00001", "valid"):
        np.savez(tmp_path / f"{name}.npz", **tdata.pack([_synthetic_clip(rng, 2.0) for _ in range(3)]))
    return tmp_path


def test_shards_round_trip(shards: Path) -> None:
    clips = tdata.load_shard(shards / "shard-00000.npz")
    assert len(clips) == 3 and clips[0]["notes"].shape == (6, 5)
    assert clips[1]["audio"].dtype == np.int16 and clips[1]["note"].shape[1] == 88


def _args(data: Path, out: Path, steps: int, resume: Path | None = None) -> list[str]:
    args = ["--data", str(data), "--out", str(out), "--width", "4", "--batch", "2", "--window", "48",
            "--steps", str(steps), "--shards", "2", "--steps-per-shard", "1", "--eval-every", "2",
            "--save-every", "1", "--valid-clips", "2", "--lr", "0.01"]  # fmt: skip
    return args + (["--resume", str(resume)] if resume else [])


def test_resume_continues_exactly_like_an_uninterrupted_run(shards: Path, tmp_path: Path) -> None:
    ttrain.main(_args(shards, tmp_path / "whole", 3))
    ttrain.main(_args(shards, tmp_path / "split", 2))
    ttrain.main(_args(shards, tmp_path / "split", 3, resume=tmp_path / "split" / "last.pt"))
    a = torch.load(tmp_path / "whole" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "split" / "last.pt", weights_only=False)
    assert a["step"] == b["step"] == 3
    for key, value in a["state"].items():
        assert torch.equal(value, b["state"][key]), key
    assert [p["step"] for p in b["curve"]] == [2, 3]


def test_a_run_from_a_later_first_shard_reads_those_files(shards: Path, tmp_path: Path) -> None:
    _same_run_on_renumbered_shards(shards, tmp_path, (40, 41), ["--first-shard", "40"])


def _same_run_on_renumbered_shards(
    shards: Path, tmp_path: Path, numbers: tuple[int, int], flags: list[str]
) -> None:
    """Shards 0 and 1 copied as files `numbers`: a run told to read those gives the same weights."""
    later = tmp_path / "later"
    later.mkdir()
    for i, number in enumerate(numbers):
        (later / f"shard-{number:05d}.npz").write_bytes((shards / f"shard-{i:05d}.npz").read_bytes())
    (later / "valid.npz").write_bytes((shards / "valid.npz").read_bytes())
    ttrain.main(_args(shards, tmp_path / "a", 2))
    ttrain.main(_args(later, tmp_path / "b", 2) + flags)
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=False)
    for key, value in a["state"].items():
        assert torch.equal(value, b["state"][key]), key


def test_shard_files_interleave_ranges_and_a_run_reads_them(shards: Path, tmp_path: Path) -> None:
    assert ttrain.interleaved_shards("40-42,76-77") == [40, 76, 41, 77, 42]
    assert ttrain.interleaved_shards("5") == [5]
    with pytest.raises(ValueError, match="overlap"):
        ttrain.interleaved_shards("1-3,3-4")
    _same_run_on_renumbered_shards(shards, tmp_path, (40, 76), ["--shard-files", "40,76"])


def test_a_resumed_run_widens_its_net_and_goes_on(shards: Path, tmp_path: Path) -> None:
    ttrain.main(_args(shards, tmp_path / "run", 2))
    ttrain.main(_args(shards, tmp_path / "run", 3, resume=tmp_path / "run" / "last.pt") + ["--widen", "6"])
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert ckpt["step"] == 3 and ckpt["width"] == 6
    assert ckpt["state"]["head.weight"].shape[1] == 6
    assert [p["step"] for p in ckpt["curve"]] == [2, 3]  # the curve goes on across the widening


def test_training_lowers_the_loss(shards: Path, tmp_path: Path) -> None:
    ttrain.main(_args(shards, tmp_path / "run", 8))
    curve = torch.load(tmp_path / "run" / "last.pt", weights_only=False)["curve"]
    assert curve[-1]["train_frame_loss"] < curve[0]["train_frame_loss"]
    assert set(curve[-1]) >= {"valid_note_f1", "valid_frame_f1", "audio_s_per_s"}


def test_exported_weights_load_run_in_chunks_and_match_torch(shards: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = NoteNet(4).eval()
    thresholds = np.tile([0.45, 0.35], (10, 1))
    path = tmp_path / "transcriber.onnx"
    export_net(net, path, thresholds, {"step": "0"})
    model = nw.NetworkTranscriber(path)
    assert model.meta["families"] == '["' + '", "'.join(f.value for f in TIMBRE_FAMILIES) + '"]'
    assert model.thresholds()["strings"] == (0.45, 0.35)
    clip = ttrain.prepare(tdata.load_shard(shards / "valid.npz"))[0]
    n = len(clip["note"])
    post = Posteriors(
        clip["note"] / np.float32(255), clip["onset"] / np.float32(255), np.zeros((n, 0), np.float32)
    )
    ref = ttrain.predict_clip(net, clip)
    whole = model.posteriors(clip["samples"], post)
    old = nw.CHUNK_FRAMES
    try:
        nw.CHUNK_FRAMES = 50  # several chunks with context on both sides, in turn or 3 at once
        got = nw.NetworkTranscriber(path, threads=1).posteriors(clip["samples"], post)
        parallel = nw.NetworkTranscriber(path, threads=3).posteriors(clip["samples"], post)
    finally:
        nw.CHUNK_FRAMES = old
    assert got.onset.shape == (n, 9, 88)
    assert np.abs(got.frame - ref.frame).max() < 2e-3  # stored as float16
    for other in (whole, parallel):  # where the chunks are cut and how many run at once: the same bits
        assert all(np.array_equal(getattr(other, k), getattr(got, k)) for k in ("onset", "frame", "velocity"))
    assert np.abs(got.velocity - ref.velocity).max() < 2e-3
    loud = frame_loudness(clip["samples"], n)
    for f in range(9):
        notes = nw.family_notes(got, f, loud, DecodeOptions())
        assert np.all((notes.pitch >= 21) & (notes.pitch <= 108))


def test_fused_head_gives_the_trained_posteriors() -> None:
    torch.manual_seed(2)
    raw = torch.randn(2, N_RAW, 30, 88) * 4
    np.testing.assert_allclose(
        fused_family_posteriors(raw).numpy(), family_posteriors(raw).numpy(), rtol=1e-5, atol=1e-7
    )


def _exported(tmp_path: Path, name: str, **flags: object) -> nw.NetworkTranscriber:
    torch.manual_seed(0)
    net = NoteNet(4).eval()
    path = tmp_path / name / "transcriber.onnx"
    export_net(net, path, np.tile([0.45, 0.35], (10, 1)), {"step": "7"}, **flags)  # type: ignore[arg-type]
    return nw.NetworkTranscriber(path)


def test_float16_output_is_numpys_rounding_of_the_float32_graph(tmp_path: Path) -> None:
    x = np.random.default_rng(4).uniform(-1, 1, (nw.N_CHANNELS, 200, 88)).astype(np.float32)
    plain = _exported(tmp_path, "plain", float16=False).run_input(x)
    half = _exported(tmp_path, "half").run_input(x)
    assert plain.dtype == np.float32 and half.dtype == np.float16
    assert np.array_equal(half.view(np.uint16), plain.astype(np.float16).view(np.uint16))


def test_int8_export_keeps_metadata_and_stays_near_the_float_graph(shards: Path, tmp_path: Path) -> None:
    clips = ttrain.prepare(tdata.load_shard(shards / "shard-00000.npz"))
    calibration = calibration_inputs(clips)
    assert [c.shape for c in calibration] == [(nw.N_CHANNELS, len(c["note"]), 88) for c in clips]
    int8 = _exported(tmp_path, "int8", int8_calibration=calibration)
    plain = _exported(tmp_path, "plain")
    assert int8.meta["step"] == "7" and int8.thresholds()["winds"] == (0.45, 0.35)
    onnx = pytest.importorskip("onnx")
    ops = {node.op_type for node in onnx.load(str(int8.path)).graph.node}
    assert {"QLinearConv", "QLinearAdd"} <= ops
    clip = ttrain.prepare(tdata.load_shard(shards / "valid.npz"))[0]
    x = ttrain.clip_input(clip, 0, len(clip["note"]))
    diff = np.abs(int8.run_input(x).astype(np.float32) - plain.run_input(x).astype(np.float32))
    assert diff.max() < 0.1
    scores = ttrain.evaluate(int8.run_input, [clip])  # an exported graph is scored like the torch net
    assert all(0.0 <= v <= 1.0 for v in scores.values())


def test_export_command_keeps_int8_only_while_validation_holds(
    shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    onnx = pytest.importorskip("onnx")
    from training.transcriber import export

    ttrain.main(_args(shards, tmp_path / "run", 2))
    out = tmp_path / "w" / "transcriber.onnx"
    argv = ["--checkpoint", str(tmp_path / "run" / "last.pt"), "--data", str(shards), "--out", str(out)]
    argv += ["--valid-clips", "2", "--int8", "--calibration-clips", "2"]

    def ops() -> set[str]:
        return {node.op_type for node in onnx.load(str(out)).graph.node}

    export.main(argv)
    assert "QLinearConv" in ops() and nw.NetworkTranscriber(out).meta["step"] == "2"
    monkeypatch.setattr(export, "INT8_TOLERANCE", -1.0)  # any loss is too much: float weights instead
    nw._load.cache_clear()
    export.main(argv)
    assert "QLinearConv" not in ops() and {"Conv", "Cast"} <= ops()
    nw.NetworkTranscriber(out)  # the sha256 sidecar is the float graph's


def test_evaluate_scores_an_exported_graph_as_its_torch_net(shards: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = NoteNet(4).eval()
    with torch.no_grad():
        net.head.bias[:2] = 1.0  # notes to score
    path = tmp_path / "transcriber.onnx"
    thresholds = np.tile([0.5, 0.4], (10, 1))
    export_net(net, path, thresholds, {})
    clips = ttrain.prepare(tdata.load_shard(shards / "valid.npz"))
    exported = ttrain.evaluate(nw.NetworkTranscriber(path).run_input, clips, thresholds)
    trained = ttrain.evaluate(net, clips, thresholds)
    assert exported.keys() == trained.keys()
    for key, value in trained.items():
        assert exported[key] == pytest.approx(value, abs=0.02), key


def test_damaged_or_foreign_weights_are_refused(tmp_path: Path) -> None:
    net = NoteNet(4).eval()
    path = tmp_path / "transcriber.onnx"
    export_net(net, path, np.tile([0.5, 0.4], (10, 1)), {})
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    nw._load.cache_clear()
    with pytest.raises(ModelError, match="damaged"):
        nw.NetworkTranscriber(path)
    with pytest.raises(ModelError, match="not found"):
        nw.NetworkTranscriber(tmp_path / "absent.onnx")


def test_training_data_never_reads_held_out_material() -> None:
    names = {p.name for p in tdata.TRAIN_FONTS}
    assert not names & set(tdata.HELD_OUT_FONT_NAMES)
    assert {lib.name for lib in tdata.TRAIN_MMA_LIBS} == {"stdlib", "pflib", "alexis"}


@pytest.mark.slow
def test_generated_clip_labels_match_what_is_rendered() -> None:
    """Every labelled note is a note-on the synth played at that time and pitch, and the audio holds it."""
    pytest.importorskip("tinysoundfont")
    fonts = [p for p in tdata.TRAIN_FONTS if p.is_file()]
    if not fonts:
        pytest.skip("no training SoundFont installed (Debian timgm6mb-soundfont)")
    from training.drums.data import Renderer

    renderer = Renderer(tuple(fonts[-1:]))
    played = record_note_ons(renderer)
    rng = np.random.default_rng(5)
    for _ in range(4):
        played.clear()
        audio, notes, kind = tdata.make_clip(rng, renderer, [], {})
        assert kind in (0, 1, 2) and audio.dtype == np.float32 and notes
        arr = np.array(notes, np.float32)
        assert np.all(arr[:, 0] >= 0) and np.all(arr[:, 1] <= len(audio) / SR + 1e-3)
        assert np.all((arr[:, 4] >= 0) & (arr[:, 4] < 9))
        assert sorted((round(s, 6), int(p)) for s, _, p, _, _ in notes) == sorted(played)
        # The audio: the harmonic stack is louder at labelled (frame, pitch) cells than a semitone off.
        n = n_output_frames(len(audio))
        mags = nw.spectrum_magnitudes(audio, np.arange(n))[:, 1]
        start, end, pitch, _, _ = ttrain.note_frames(arr, n)
        on = np.zeros((n, 88), bool)
        for s, e, p in zip(start, end, pitch, strict=True):
            on[s:e, p] = True
        off = np.roll(on, 1, axis=1) & ~on
        assert mags[on].mean() > 2 * mags[off].mean()


def test_evaluate_and_tune_on_a_few_clips(shards: Path) -> None:
    net = NoteNet(4).eval()
    clips = ttrain.prepare(tdata.load_shard(shards / "valid.npz"))[:2]
    th = ttrain.tune_thresholds(net, clips)
    assert th.shape == (10, 2)
    scores = ttrain.evaluate(net, clips, th)
    assert set(scores) >= {"note_f1", "pitch_note_f1", "any_note_f1", "frame_f1"}
    assert all(0.0 <= v <= 1.0 for v in scores.values())
