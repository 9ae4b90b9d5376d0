"""The shipped drum network: front end, peak picking, weights checking, and transcription quality."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from stemscribe.errors import InvalidOptionError, ModelError
from stemscribe.transcription import drum_model
from stemscribe.transcription.drum_model import (
    FPS,
    HOP,
    N_MELS,
    SAMPLE_RATE,
    DrumModel,
    default_weights_path,
    log_mel,
    mel_filterbank,
    n_frames,
    pick_peaks,
    weights_available,
)
from stemscribe.transcription.drums import (
    DRUM_CLASSES,
    GM_TO_CLASS,
    DrumTranscriber,
    drum_backend_names,
    get_drum_backend,
)

needs_weights = pytest.mark.skipif(
    not weights_available(), reason="stemscribe/weights/drums.onnx not present"
)


def test_filterbank_covers_every_band() -> None:
    fb = mel_filterbank()
    assert fb.shape == (513, N_MELS)
    assert (fb >= 0).all()
    np.testing.assert_allclose(fb.sum(axis=0), 1.0, rtol=1e-5)
    centres = (fb * np.arange(513)[:, None]).sum(axis=0)
    assert (np.diff(centres) >= 0).all()  # bands ascend in frequency


def test_log_mel_frames_are_centred_on_hops() -> None:
    x = np.zeros(SAMPLE_RATE, np.float32)
    click = 100 * HOP
    x[click : click + 20] = 1.0
    mel = log_mel(x)
    assert mel.shape == (n_frames(x.size), N_MELS)
    assert mel.dtype == np.float32
    energy = mel.mean(axis=1)
    assert abs(int(np.argmax(energy)) - 100) <= 1
    assert energy[:95].max() < energy[100] - 5  # silence before the click is far below it


def test_log_mel_rejects_stereo() -> None:
    with pytest.raises(ValueError, match="mono"):
        log_mel(np.zeros((2, 100), np.float32))


def test_pick_peaks_finds_maxima_above_threshold() -> None:
    a = np.zeros(100, np.float32)
    a[10], a[11], a[9] = 0.9, 0.5, 0.5  # symmetric: no sub-frame shift
    a[40], a[41] = 0.8, 0.8  # a plateau gives one peak
    a[70] = 0.3  # below the threshold
    a[90], a[91] = 0.6, 0.9  # neighbours: only the larger counts
    peaks = pick_peaks(a, 0.5)
    assert len(peaks) == 3
    np.testing.assert_allclose(peaks[0], 10.0)
    assert 40 <= peaks[1] <= 41
    assert 90.5 <= peaks[2] <= 91.5
    assert len(pick_peaks(np.zeros(0, np.float32), 0.5)) == 0


def test_missing_weights_raise_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        DrumModel(tmp_path / "nothing.onnx")


@needs_weights
def test_checksum_mismatch_raises_model_error(tmp_path: Path) -> None:
    src = default_weights_path()
    bad = tmp_path / "drums.onnx"
    data = bytearray(src.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    shutil.copy(src.with_name(src.name + ".sha256"), tmp_path / "drums.onnx.sha256")
    with pytest.raises(ModelError, match="damaged"):
        DrumModel(bad)


@needs_weights
def test_missing_checksum_raises_model_error(tmp_path: Path) -> None:
    copy = tmp_path / "drums.onnx"
    shutil.copy(default_weights_path(), copy)
    with pytest.raises(ModelError, match="checksum"):
        DrumModel(copy)


@needs_weights
def test_shipped_weights_are_small_and_registered() -> None:
    assert default_weights_path().stat().st_size < 5 * 1024 * 1024
    assert "model" in drum_backend_names()
    backend = get_drum_backend("model")
    assert isinstance(backend, DrumModel)
    assert isinstance(backend, DrumTranscriber)
    assert len(backend.thresholds) == len(DRUM_CLASSES)


@needs_weights
def test_silence_and_empty_input_give_no_notes() -> None:
    model = DrumModel()
    assert model.transcribe(np.zeros(0, np.float32), SAMPLE_RATE) == []
    assert model.transcribe(np.zeros(3 * SAMPLE_RATE, np.float32), SAMPLE_RATE) == []
    with pytest.raises(ValueError, match="mono"):
        model.transcribe(np.zeros((2, 1000), np.float32), SAMPLE_RATE)


def _groove_midi(path: Path) -> list[tuple[float, int]]:
    """Four bars of a rock beat with a tom fill and a crash, written as MIDI; returns (time, class)."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=100)
    drums = pretty_midi.Instrument(0, is_drum=True)
    beat = 0.6
    truth = []

    def hit(t: float, key: int, vel: int) -> None:
        drums.notes.append(pretty_midi.Note(vel, key, t, t + 0.05))
        truth.append((t, GM_TO_CLASS[key]))

    start = 0.3
    for bar in range(4):
        t0 = start + bar * 4 * beat
        if bar == 0:
            hit(t0, 49, 110)
        for eighth in range(8):
            t = t0 + eighth * beat / 2
            if bar == 3 and eighth >= 6:
                continue
            hit(t, 42, 90 if eighth % 2 == 0 else 60)
            if eighth in (0, 3, 4):
                hit(t, 36, 110)
            if eighth in (2, 6):
                hit(t, 38, 105)
        if bar == 3:
            for k, key in enumerate((50, 47, 45, 45)):
                hit(t0 + 3 * beat + k * beat / 4, key, 110)
    hit(start + 16 * beat, 49, 120)
    hit(start + 16 * beat, 36, 120)
    pm.instruments.append(drums)
    pm.write(str(path))
    return truth


@needs_weights
def test_transcribes_a_fluidsynth_groove(signals, tmp_path: Path) -> None:
    """A groove rendered by FluidSynth (not the training renderer) through the held-out SoundFont."""
    import soundfile as sf

    from training.drums.scoring import onsets_by_class, score_onsets

    truth = _groove_midi(tmp_path / "groove.mid")
    wav = signals.render_midi(tmp_path / "groove.mid", tmp_path / "groove.wav", sr=44100)
    audio, sr = sf.read(wav, dtype="float32", always_2d=True)
    notes = DrumModel().transcribe(audio.mean(axis=1), sr)
    assert notes == sorted(notes, key=lambda n: (n.start, n.pitch))
    for n in notes:
        assert n.pitch in DRUM_CLASSES
        assert 0.0 <= n.start < n.end
        assert 0.0 < n.velocity <= 1.0
    reference = [[t for t, cls in truth if cls == pitch] for pitch in DRUM_CLASSES]
    counts = score_onsets(reference, onsets_by_class(notes))
    precision, recall, f1 = counts.micro()
    per_class = counts.per_class()
    assert f1 >= 0.85, (f1, per_class)
    for pitch in (36, 38, 42):
        assert per_class[pitch][2] >= 0.8, (pitch, per_class[pitch])


@needs_weights
def test_sample_rate_is_handled() -> None:
    """The same clip at 44.1 kHz and at 22.05 kHz gives the same activations (within 0.05) and onsets
    (within a frame). The thresholds are fixed at 0.5, clear of this clip's peaks: a threshold within
    0.02 of a peak (the stems' 0.65 for closed hats is) lets resampling alone flip that note."""
    from stemscribe.audio import resample

    rng = np.random.default_rng(1)
    x = np.zeros(SAMPLE_RATE * 3, np.float32)
    for k in range(6):
        s = int((0.3 + 0.4 * k) * SAMPLE_RATE)
        n = np.arange(4000)
        x[s : s + 4000] += (np.sin(2 * np.pi * 60 * n / SAMPLE_RATE) * np.exp(-n / 1500)).astype(np.float32)
        x[s : s + 800] += (0.2 * rng.standard_normal(800) * np.exp(-np.arange(800) / 200)).astype(np.float32)
    model = DrumModel(thresholds=(0.5,) * len(DRUM_CLASSES))
    up = resample(x, SAMPLE_RATE, 44100)
    onset_a, _ = model.activations(x, SAMPLE_RATE)
    onset_b, _ = model.activations(up, 44100)
    assert np.abs(onset_a - onset_b).max() < 0.05
    a = model.transcribe(x, SAMPLE_RATE)
    b = model.transcribe(up, 44100)
    assert len(a) >= 12  # six kicks and at least six more hits
    assert len(a) == len(b)
    for p, q in zip(a, b, strict=True):
        assert p.pitch == q.pitch
        assert abs(p.start - q.start) <= 1.5 / FPS


def test_no_model_backend_without_weights(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(drum_model, "default_weights_path", lambda: tmp_path / "drums.onnx")
    assert "model" not in drum_backend_names()
    assert get_drum_backend("auto").name == "dsp"
    with pytest.raises(InvalidOptionError, match="unknown drum backend 'model'"):
        get_drum_backend("model")


def _percussion_band_midi(path: Path) -> None:
    """Eight bars of bass, piano and a kit with a tambourine on the off-beats and congas."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=100)
    bass, piano = pretty_midi.Instrument(33), pretty_midi.Instrument(0)
    drums = pretty_midi.Instrument(0, is_drum=True)
    beat = 0.6
    for bar in range(8):
        t0 = 0.2 + bar * 4 * beat
        root = (40, 45, 43, 38)[bar % 4]
        bass.notes.append(pretty_midi.Note(100, root, t0, t0 + 4 * beat - 0.05))
        for p in (root + 24, root + 28, root + 31):
            piano.notes.append(pretty_midi.Note(70, p, t0, t0 + 2 * beat))
        for eighth in range(8):
            t = t0 + eighth * beat / 2
            drums.notes.append(pretty_midi.Note(80, 42, t, t + 0.05))
            if eighth in (0, 4):
                drums.notes.append(pretty_midi.Note(110, 36, t, t + 0.05))
            if eighth in (2, 6):
                drums.notes.append(pretty_midi.Note(105, 38, t, t + 0.05))
            if eighth % 2 == 1:
                drums.notes.append(pretty_midi.Note(110, 54, t, t + 0.05))  # tambourine
        for sixteenth, key in ((3, 63), (7, 63), (11, 64), (14, 64), (15, 64)):  # congas
            t = t0 + sixteenth * beat / 4
            drums.notes.append(pretty_midi.Note(115, key, t, t + 0.05))
    pm.instruments.extend([bass, piano, drums])
    pm.write(str(path))


@needs_weights
def test_a_mix_with_tambourine_and_congas_writes_them(signals, tmp_path: Path) -> None:
    """The auxiliary classes come out of a full mix, in the JSON and in the .mid, as their GM keys."""
    import json

    import pretty_midi

    import stemscribe

    _percussion_band_midi(tmp_path / "band.mid")
    wav = signals.render_midi(tmp_path / "band.mid", tmp_path / "band.wav", sr=44100)
    result = stemscribe.transcribe(wav, stem="mix", drums="model")
    doc = json.loads(result.to_json())
    drum_parts = [i for i in doc["instruments"] if i["is_drum"]]
    assert drum_parts
    pitches = [n["pitch"] for i in drum_parts for n in i["notes"]]
    for key, least in ((54, 16), (63, 6), (64, 8)):  # of 32 tambourine hits, 16 high and 24 low congas
        assert pitches.count(key) >= least, (key, sorted(set(pitches)))
    midi = pretty_midi.PrettyMIDI(str(result.write_midi(tmp_path / "out.mid")))
    written = [n.pitch for i in midi.instruments if i.is_drum for n in i.notes]
    assert sorted(written) == sorted(pitches)
    assert set(written) <= set(DRUM_CLASSES)


def _weights_with_thresholds(tmp_path: Path, **meta: list[float] | None) -> Path:
    """A copy of the shipped weights whose metadata keys in `meta` are set (None: removed)."""
    import json

    onnx = pytest.importorskip("onnx", reason="rewriting metadata needs the onnx package")
    from stemscribe.transcription.weights import write_weights

    model = onnx.load(str(default_weights_path()))
    kept = [(p.key, p.value) for p in model.metadata_props if p.key not in meta]
    del model.metadata_props[:]
    for key, value in kept + [(k, json.dumps(v)) for k, v in meta.items() if v is not None]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    out = tmp_path / "drums.onnx"
    write_weights(out, model.SerializeToString())
    return out


def _peaks(values: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """(n_frames, n_classes) onset activations with one isolated peak of each value in class 0."""
    onset = np.zeros((20 * len(values) + 20, len(DRUM_CLASSES)), np.float32)
    for i, v in enumerate(values):
        onset[10 + 20 * i, 0] = v
    return onset, np.full_like(onset, 0.5)


@needs_weights
def test_stems_and_mixes_decode_with_their_own_thresholds(tmp_path: Path) -> None:
    n = len(DRUM_CLASSES)
    weights = _weights_with_thresholds(tmp_path, thresholds=[0.3] * n, thresholds_mix=[0.8] * n)
    model = DrumModel(weights)
    assert model.thresholds_for("stem") == model.thresholds == (0.3,) * n
    assert model.thresholds_for("mix") == (0.8,) * n
    onset, velocity = _peaks([0.4, 0.9, 0.6])
    stem = model.notes_from_activations(onset, velocity, kind="stem")
    mix = model.notes_from_activations(onset, velocity, kind="mix")
    assert len(stem) == 3 and len(mix) == 1
    assert mix[0].start == pytest.approx(30 / FPS) and mix[0].pitch == DRUM_CLASSES[0]
    assert model.notes_from_activations(onset, velocity) == stem  # a stem unless told otherwise
    with pytest.raises(InvalidOptionError, match="unknown drum input"):
        model.notes_from_activations(onset, velocity, kind="song")  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError, match="unknown drum input"):
        model.transcribe(np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE, kind="song")  # type: ignore[arg-type]
    # explicit thresholds replace both kinds'; mix_thresholds only the mixes'
    assert DrumModel(weights, thresholds=(0.5,) * n).thresholds_for("mix") == (0.5,) * n
    both = DrumModel(weights, thresholds=(0.5,) * n, mix_thresholds=(0.7,) * n)
    assert both.thresholds_for("stem") == (0.5,) * n and both.thresholds_for("mix") == (0.7,) * n


@needs_weights
def test_weights_without_mix_thresholds_decode_mixes_like_stems(tmp_path: Path) -> None:
    n = len(DRUM_CLASSES)
    weights = _weights_with_thresholds(tmp_path, thresholds=[0.45] * n, thresholds_mix=None)
    model = DrumModel(weights)
    assert model.thresholds_for("mix") == model.thresholds_for("stem") == (0.45,) * n
    onset, velocity = _peaks([0.4, 0.9, 0.6])
    assert model.notes_from_activations(onset, velocity, kind="mix") == model.notes_from_activations(
        onset, velocity, kind="stem"
    )


@needs_weights
def test_mix_thresholds_of_the_wrong_length_raise_model_error(tmp_path: Path) -> None:
    weights = _weights_with_thresholds(tmp_path, thresholds_mix=[0.5, 0.5])
    with pytest.raises(ModelError, match="thresholds_mix"):
        DrumModel(weights)


@needs_weights
def test_shipped_weights_carry_thresholds_per_input() -> None:
    import onnxruntime as ort

    meta = (
        ort.InferenceSession(str(default_weights_path()), providers=["CPUExecutionProvider"])
        .get_modelmeta()
        .custom_metadata_map
    )
    assert "thresholds" in meta and "thresholds_mix" in meta
    model = DrumModel()
    assert len(model.thresholds_for("mix")) == len(DRUM_CLASSES)
    assert model.thresholds_for("mix") != model.thresholds_for("stem")


class _KindRecorder:
    """A drum backend that notes which input kind the pipeline says it hears."""

    name = "recorder"

    def __init__(self) -> None:
        self.kinds: list[str] = []

    def transcribe(self, samples: np.ndarray, sr: int, *, kind: str = "stem") -> list:
        self.kinds.append(kind)
        return []


def test_pipeline_tells_the_drum_backend_what_it_hears() -> None:
    from stemscribe import Transcriber

    transcriber = Transcriber(drums="dsp", engine="basic-pitch", families=False, verify=False)
    recorder = _KindRecorder()
    transcriber._drums = recorder
    assert isinstance(recorder, DrumTranscriber)
    noise = np.random.default_rng(0).normal(0, 0.1, 2 * SAMPLE_RATE).astype(np.float32)
    transcriber.transcribe((noise, SAMPLE_RATE), stem="drums")
    transcriber.transcribe((noise, SAMPLE_RATE), stem="mix")
    assert recorder.kinds == ["stem", "mix"]
