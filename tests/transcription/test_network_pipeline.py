"""The transcription network inside the pipeline: a tiny random-weight export through mixes, stems, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stemscribe.audio import load_audio
from stemscribe.errors import InvalidOptionError, ModelError
from stemscribe.stems import Family, StemType
from stemscribe.transcription.notes import to_events
from stemscribe.transcription.pipeline import Transcriber
from tests.conftest import export_firing_network, melody

torch = pytest.importorskip("torch", reason="exporting the test network needs torch (the train extra)")


SR = 22050


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random weights whose onset and frame heads fire everywhere, so every stage downstream runs."""
    return export_firing_network(tmp_path_factory.mktemp("net") / "transcriber.onnx")


def _mix() -> np.ndarray:
    audio = melody([(40, 0.2, 1.0), (64, 0.5, 1.5), (67, 1.0, 2.0), (72, 1.6, 2.6)], 3.0)
    clicks = np.zeros_like(audio)
    for t in (0.25, 0.75, 1.25, 1.75):
        clicks[int(t * SR) : int(t * SR) + 200] += np.random.default_rng(0).standard_normal(200) * 0.3
    return audio + clicks.astype(np.float32)


def test_network_engine_writes_one_instrument_per_family_heard(weights: Path) -> None:
    tr = Transcriber(engine="network", network_weights=weights)
    result = tr.transcribe((_mix(), SR), stem="mix")
    assert tr.uses_network(StemType.MIX) and tr.uses_network(StemType.BASS)
    pitched = [i for i in result.instruments if not i.is_drum]
    assert pitched, "heads that fire everywhere must give notes"
    assert len({i.family for i in pitched}) == len(pitched)
    for inst in pitched:
        assert inst.family in set(Family) - {Family.DRUMS}
        for n in inst.notes:
            assert 21 <= n.pitch <= 108 and 0 <= n.start < n.end <= result.duration + 1e-6
            assert 0 < n.velocity <= 1
    assert result.to_json()


def test_network_stem_is_written_as_the_stems_family(weights: Path) -> None:
    tr = Transcriber(engine="network", network_weights=weights)
    result = tr.transcribe((melody([(45, 0.2, 1.0), (47, 1.2, 2.0)], 2.5), SR), stem="bass")
    assert [i.family for i in result.instruments] == [Family.BASS]


def test_auto_engine_uses_the_network_where_the_dev_split_chose_it(weights: Path) -> None:
    tr = Transcriber(engine="auto", network_weights=weights)
    for stem in (StemType.MIX, StemType.STRINGS, StemType.SYNTH):
        assert tr.uses_network(stem)
    for stem in (StemType.VOCALS, StemType.BASS, StemType.PIANO, StemType.DRUMS):
        assert not tr.uses_network(stem)


def test_basic_pitch_engine_never_loads_the_network(weights: Path) -> None:
    tr = Transcriber(engine="basic-pitch", network_weights=weights)
    assert tr.network is None and not tr.uses_network(StemType.MIX)


def test_engine_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(InvalidOptionError, match="unknown engine"):
        Transcriber(engine="mt3")
    with pytest.raises(ModelError, match="weights are not installed"):
        Transcriber(engine="network", network_weights=tmp_path / "absent.onnx")
    # auto without weights falls back to basic-pitch everywhere.
    assert not Transcriber(network_weights=tmp_path / "absent.onnx").uses_network(StemType.MIX)


def test_cli_refuses_an_unknown_engine_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from stemscribe.cli import app

    wav = tmp_path / "a.wav"
    import soundfile as sf

    sf.write(wav, melody([(60, 0.1, 0.5)], 1.0), SR)
    out = CliRunner().invoke(app, ["transcribe", str(wav), "--engine", "mt3", "-o", str(tmp_path)])
    assert out.exit_code != 0
    assert "unknown engine" in out.output and len(out.output.strip().splitlines()) == 1


def test_mix_notes_are_what_the_mix_path_assigns(weights: Path) -> None:
    tr = Transcriber(engine="network", network_weights=weights)
    mix = tr.mix_notes(_mix())
    n = len(mix.notes)
    assert n > 0 and mix.shares.shape == (n, 9) and np.allclose(mix.shares.sum(axis=1), 1.0, atol=1e-5)
    if tr.family_model is not None:
        assert mix.heard is not None and mix.heard.shape == (n, 9)
    # Every pitched note the mix path writes is one of these (with its family chosen from them).
    result = tr.transcribe((_mix(), SR), stem="mix")
    written = {(n.pitch, round(n.start, 4)) for i in result.instruments if not i.is_drum for n in i.notes}
    heard = {(int(e.pitch), round(e.start, 4)) for e in to_events(mix.notes)}
    assert written and written <= heard


def test_mix_notes_need_the_network(weights: Path) -> None:
    with pytest.raises(ModelError, match="transcription network"):
        Transcriber(engine="basic-pitch", network_weights=weights).mix_notes(_mix())


def test_tune_mix_caches_the_pipelines_mix_notes(weights: Path, tmp_path: Path) -> None:
    import soundfile as sf

    from training.transcriber.tune_mix import cache_mix, score

    path = tmp_path / "mix.wav"
    sf.write(path, _mix(), SR)
    tr = Transcriber(engine="network", network_weights=weights)
    cached = cache_mix("dev", path, [], tr)
    mix = tr.mix_notes(load_audio(path, sr=SR, mono=True).samples)
    assert np.array_equal(cached.pitch, mix.notes.pitch) and np.array_equal(cached.shares, mix.shares)
    assert cached.heard.shape == (len(mix.notes), 9)
    assert set(score([cached], 0.3, 86, 4, 8)) == {"dev"}


def test_a_stems_notes_end_by_that_stems_share_of_their_peak(
    weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stemscribe.transcription.decoding import NETWORK_OFFSET_RATIO, network_decode_options
    from stemscribe.transcription.network import FamilyPosteriors, family_notes
    from stemscribe.transcription.notes import DecodeOptions
    from training.transcriber.tune_offsets import network_item

    tr = Transcriber(engine="network", network_weights=weights)
    audio = melody([(45, 0.2, 1.0)], 2.5)

    def posteriors(self, analysis, spectrum=None):  # a bass note at 0.9 for 40 frames, then a 0.5 tail
        n = analysis.pitched[1].shape[0]
        onset, frame = np.zeros((n, 9, 88), np.float32), np.zeros((n, 9, 88), np.float32)
        onset[20, 0, 45 - 21] = 0.95
        frame[20:60, 0, 45 - 21] = 0.9
        frame[60:120, 0, 45 - 21] = 0.5
        return FamilyPosteriors(onset, frame, np.full_like(frame, 0.5))

    monkeypatch.setattr(Transcriber, "_posteriors", posteriors)
    fp, loud = tr.stem_posteriors(audio)
    assert tr.network is not None
    onset, frame = tr.network.thresholds()["pitch"]
    ends = {}
    for stem in (StemType.BASS, StemType.KEYS):
        options = network_decode_options(stem, onset, frame)
        expected = to_events(family_notes(fp, 0, loud, options))
        written = tr.transcribe((audio, SR), stem=stem.value).instruments[0].notes
        assert [(n.pitch, n.start, n.end) for n in written] == [(n.pitch, n.start, n.end) for n in expected]
        ends[stem] = written[0].end
        # the tuning script decodes the same notes from the same posteriors
        decode = network_item(tr, audio, DecodeOptions(onset_threshold=onset, frame_threshold=frame))
        tuned = decode(NETWORK_OFFSET_RATIO[stem])
        assert [(n.pitch, n.end) for n in tuned] == [(n.pitch, n.end) for n in expected]
    assert ends[StemType.KEYS] < ends[StemType.BASS]  # keys (0.9) cut the tail that bass (0.5) keeps


def test_stem_posteriors_need_the_network(weights: Path) -> None:
    with pytest.raises(ModelError, match="transcription network"):
        Transcriber(engine="basic-pitch", network_weights=weights).stem_posteriors(_mix())


def test_auto_ends_basic_pitchs_notes_where_the_network_hears_them_end(
    weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stemscribe.transcription.decoding import NETWORK_END_RATIO
    from stemscribe.transcription.network import FamilyPosteriors
    from stemscribe.transcription.notes import FRAME_SECONDS
    from training.transcriber.tune_offsets import OWN_ENDS, basic_pitch_item

    audio = melody([(45, 0.2, 1.5)], 2.5)
    own = Transcriber(engine="basic-pitch").transcribe((audio, SR), stem="bass").instruments[0].notes
    assert [n.pitch for n in own] == [45] and own[0].end > 1.2

    def posteriors(self, analysis, spectrum=None):  # the network hears the note end at frame 60
        n = analysis.pitched[1].shape[0]
        frame = np.zeros((n, 9, 88), np.float32)
        frame[10:60, 0, 45 - 21] = 0.9
        return FamilyPosteriors(np.zeros_like(frame), frame, np.full_like(frame, 0.5))

    monkeypatch.setattr(Transcriber, "_posteriors", posteriors)
    auto = Transcriber(engine="auto", network_weights=weights)
    assert StemType.BASS in NETWORK_END_RATIO and not auto.uses_network(StemType.BASS)
    notes = auto.transcribe((audio, SR), stem="bass").instruments[0].notes
    assert [(n.pitch, n.start) for n in notes] == [(n.pitch, n.start) for n in own]
    assert notes[0].end == pytest.approx(60 * FRAME_SECONDS, abs=1e-6)
    # the tuning script's settings: the network's ends, or basic-pitch's own
    decode = basic_pitch_item(auto, audio, StemType.BASS)
    assert decode(NETWORK_END_RATIO[StemType.BASS])[0].end == pytest.approx(notes[0].end)
    assert decode(OWN_ENDS)[0].end == pytest.approx(own[0].end)
