"""The Transcriber end to end on synthetic and FluidSynth-rendered audio."""

from __future__ import annotations

import numpy as np
import pytest

import stemscribe
from stemscribe.errors import InvalidOptionError
from stemscribe.stems import Family


def test_silence_gives_no_instruments(transcriber) -> None:
    for stem in ("auto", "mix", "bass", "drums", "piano"):
        result = transcriber.transcribe((np.zeros(22050 * 2, np.float32), 22050), stem=stem)
        assert result.instruments == [] and abs(result.duration - 2.0) < 1e-6


def test_very_short_audio_does_not_crash(transcriber) -> None:
    result = transcriber.transcribe((np.random.default_rng(0).normal(0, 0.1, 200), 44100), stem="mix")
    for inst in result.instruments:
        assert all(0 <= n.start < n.end <= result.duration for n in inst.notes)


def test_unknown_stem_type(transcriber) -> None:
    with pytest.raises(InvalidOptionError, match="choose one of"):
        transcriber.transcribe((np.zeros(22050), 22050), stem="kazoo")


def test_bass_stem_is_one_line_in_range(transcriber, signals) -> None:
    truth = [(40, 0.2, 0.7), (47, 0.7, 1.2), (45, 1.2, 1.7), (43, 1.7, 2.4)]
    result = transcriber.transcribe((signals.melody(truth, 3.0), signals.sr), stem="bass")
    (bass,) = result.instruments
    assert bass.family is Family.BASS and bass.program == 33 and not bass.is_drum
    assert [n.pitch for n in bass.notes] == [40, 47, 45, 43]
    assert all(b.start >= a.end - 1e-6 for a, b in zip(bass.notes, bass.notes[1:], strict=False))
    velocities = {round(n.velocity, 3) for n in bass.notes}
    assert all(0 < v <= 1 for v in velocities)


def test_drum_stem_gives_gm_drums(transcriber, rendered_band) -> None:
    import pretty_midi

    from stemscribe.transcription.drums import DRUM_CLASSES

    wav, truth = rendered_band
    drums_only = pretty_midi.PrettyMIDI(initial_tempo=120)
    drums_only.instruments.append(truth.instruments[2])
    result = transcriber.transcribe(wav, stem="drums")
    (drums,) = result.instruments
    assert drums.is_drum and drums.name == "Drums"
    assert {n.pitch for n in drums.notes} <= set(DRUM_CLASSES)
    kicks = [n.start for n in drums.notes if n.pitch == 36]
    hits = sum(any(abs(k - t) < 0.05 for k in kicks) for t in (0.1, 1.1, 2.1, 3.1, 4.1, 5.1))
    assert hits >= 5


def test_mix_names_bass_lead_accompaniment_and_drums(transcriber, rendered_band) -> None:
    wav, truth = rendered_band
    result = stemscribe.transcribe(wav, stem="mix", drums="dsp")
    families = {i.family for i in result.instruments}
    assert Family.BASS in families and Family.DRUMS in families
    bass = next(i for i in result.instruments if i.family is Family.BASS)
    true_bass = [(n.pitch, n.start) for n in truth.instruments[0].notes]
    found = sum(any(n.pitch == p and abs(n.start - s) < 0.05 for n in bass.notes) for p, s in true_bass)
    assert found >= 4
    assert result.separator == "hpss"
    assert 100 <= result.tempo <= 130 or 50 <= result.tempo <= 65 or 200 <= result.tempo <= 260


def test_progress_reaches_done(transcriber, signals) -> None:
    seen: list[tuple[str, float]] = []
    transcriber.transcribe(
        (signals.melody([(60, 0.1, 0.6)], 1.0), signals.sr),
        stem="mix",
        progress=lambda s, f: seen.append((s, f)),
    )
    assert seen[0][0] == "loading" and seen[-1] == ("done", 1.0)
    assert all(0.0 <= f <= 1.0 for _, f in seen)
    assert [f for _, f in seen] == sorted(f for _, f in seen)


def test_auto_recognises_a_bass_line(transcriber, signals) -> None:
    truth = [(36 + (i % 5), 0.1 + 0.4 * i, 0.45 + 0.4 * i) for i in range(10)]
    result = transcriber.transcribe((signals.melody(truth, 4.5), signals.sr), stem="auto")
    assert result.stem == "bass"


def test_pitch_bends_follow_a_glide() -> None:
    from stemscribe import Transcriber

    sr = 22050
    t = np.arange(int(2.5 * sr)) / sr
    semis = np.clip((t - 1.0) / 0.6, 0, 1)  # A3 gliding up a semitone between 1.0 and 1.6 s
    phase = 2 * np.pi * np.cumsum(220 * 2 ** (semis / 12)) / sr
    x = sum((0.6**k) * np.sin((k + 1) * phase) for k in range(4)) * 0.3 * (t > 0.3) * (t < 2.2)
    bent = Transcriber(pitch_bends=True).transcribe((x.astype(np.float32), sr), stem="vocals")
    plain = Transcriber().transcribe((x.astype(np.float32), sr), stem="vocals")
    assert all(not n.bend for n in plain.instruments[0].notes)
    first = bent.instruments[0].notes[0]
    assert first.pitch == 57 and first.bend
    assert max(s for _, s in first.bend) > 0.15  # bending up towards A#3 before the next note starts
    assert all(first.start - 1e-6 <= bt <= first.end + 1e-6 for bt, _ in first.bend)


def test_other_stem_is_named_by_its_timbre(tmp_path, signals) -> None:
    import pretty_midi

    from stemscribe import Transcriber
    from stemscribe.transcription.timbre import FamilyClassifier

    if not FamilyClassifier.available():
        pytest.skip("stemscribe/weights/timbre.onnx not shipped")
    pm = pretty_midi.PrettyMIDI(initial_tempo=100)
    flute = pretty_midi.Instrument(73)
    for i, p in enumerate([72, 74, 76, 77, 79, 77, 76, 74, 72, 71, 72, 74]):
        flute.notes.append(pretty_midi.Note(90, p, 0.2 + 0.4 * i, 0.55 + 0.4 * i))
    pm.instruments.append(flute)
    pm.write(str(tmp_path / "flute.mid"))
    wav = signals.render_midi(tmp_path / "flute.mid", tmp_path / "flute.wav")
    (inst,) = Transcriber().transcribe(wav, stem="other").instruments
    assert inst.family is Family.WINDS and inst.name == "Flute"


def test_bundled_example_comes_back_as_its_band() -> None:
    """The shipped clip (drums, bass, piano, flute rendered from example.mid) against its own MIDI."""
    from importlib import resources

    import pretty_midi

    data = resources.files("stemscribe") / "data"
    truth = pretty_midi.PrettyMIDI(str(data / "example.mid"))
    result = stemscribe.transcribe(str(data / "example.flac"), stem="mix")
    by_family = {i.family: i for i in result.instruments}
    assert Family.DRUMS in by_family and Family.BASS in by_family
    true_bass = [(n.pitch, n.start) for n in truth.instruments[1].notes if n.start < result.duration]
    bass = by_family[Family.BASS].notes
    found = sum(any(n.pitch == p and abs(n.start - s) < 0.05 for n in bass) for p, s in true_bass)
    # Each bar's fourth bass note jumps an octave, above the mix bass line's range (MIDI 52): those
    # six come out as accompaniment, the rest as bass (16 of 24 without the note verifier, 15 with
    # it: at 9.0 s the decoder splits an attack in two and the verifier keeps the later half, which
    # the bass line does not claim; keeping the earlier half instead cost 0.005-0.015 F1 on the
    # benchmark).
    assert found >= 0.6 * len(true_bass) and len(bass) <= 1.25 * len(true_bass)
    kicks = [n.start for n in by_family[Family.DRUMS].notes if n.pitch == 36]
    true_kicks = [n.start for n in truth.instruments[0].notes if n.pitch == 36 and n.start < result.duration]
    assert sum(any(abs(k - t) < 0.05 for k in kicks) for t in true_kicks) >= 0.8 * len(true_kicks)
    assert 115 <= result.tempo <= 125
