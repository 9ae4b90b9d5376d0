"""The recorded sample kits of the drum data: the name table, Hydrogen's drumkit.xml, the renderer, and
that a clip played through a sample kit is labelled with what it plays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stemscribe.transcription.drum_model import SAMPLE_RATE
from stemscribe.transcription.drums import DRUM_CLASSES, KEY_TO_CLASS
from training.drums.samples import (
    SHAKER_KEYS,
    SKIP,
    Instrument,
    Layer,
    SampleKit,
    SampleRenderer,
    key_of_name,
    parse_hydrogen_kit,
    synth_shaker,
)

TIMGM = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Pearl Kick", 36),
        ("BassDrum", 36),
        ("Sabian Hat Closed", 42),
        ("Sabian Hat Pedal", 44),
        ("VariBreaks Hat 1 Pd", 44),
        ("Hi Hat Opened", 46),
        ("Sabian Hat Semi-Open", 46),
        ("Pearl Side Stick", 37),
        ("Hand Clap", 39),
        ("Pearl Snare Rimshot", 38),
        ("Pearl Tom Floor", 43),
        ("Pearl Tom 2", 47),
        ("Tom Hi", 50),
        ("Paiste Bell", 53),
        ("Ride Jazz", 51),
        ('Crash/Ride Bow (Paiste Rude Crash/Ride 18")', 51),
        ('China (Paiste Alpha 18")', 52),
        ("Zildjian Splash", 55),
        ("Sabian Crash", 49),
        ("Tambourine Pedal (Pearl PTM-10GH)", 54),
        ("Agogo High (Pearl ECB-23)", 67),
        ("Bongo Lo", 61),
        ("Maraca", 70),
        ("Woodblock Lo", 77),
        ("hihat_foot_pedal01", 44),
        ("Finger Snaps", None),
        ("Djembe1 Bass", None),
        ("Snare Roll", SKIP),
        ("Zildjian Splash Choke", SKIP),
        ("Sample: beats_01-39.flac", SKIP),
    ],
)
def test_instrument_names_map_to_gm_keys(name: str, key: int | None) -> None:
    assert key_of_name(name) == key


def _tone(freq: float, seconds: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * 44100)) / 44100
    return (0.5 * np.sin(2 * np.pi * freq * t) * np.exp(-t / 0.1)).astype(np.float32)


def _write_kit(folder: Path) -> Path:
    import soundfile as sf

    folder.mkdir()
    for name, freq in (("kick-soft", 150), ("kick-hard", 400), ("hat", 5000), ("snap", 1200)):
        sf.write(folder / f"{name}.wav", _tone(freq), 44100)
    (folder / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt \x02\x00\x00\x00")  # a bad header
    (folder / "drumkit.xml").write_text(
        """<?xml version="1.0" encoding="UTF-8"?>
<drumkit_info xmlns="http://www.hydrogen-music.org/drumkit"><name>Test</name><instrumentList>
<instrument><id>0</id><name>Kick</name><gain>1</gain><volume>1</volume>
 <layer><filename>kick-soft.wav</filename><min>0</min><max>0.5</max><gain>1</gain><pitch>0</pitch></layer>
 <layer><filename>kick-hard.wav</filename><min>0.5</min><max>1</max><gain>1</gain><pitch>0</pitch></layer>
</instrument>
<instrument><id>1</id><name>Closed HH</name><filename>hat.wav</filename></instrument>
<instrument><id>2</id><name>Finger Snaps</name><layer><filename>snap.wav</filename><min>0</min><max>1</max>
 <gain>1</gain></layer></instrument>
<instrument><id>3</id><name>Snare Roll</name><layer><filename>snap.wav</filename></layer></instrument>
<instrument><id>4</id><name>Tom Low</name><layer><filename>missing.wav</filename></layer></instrument>
<instrument><id>5</id><name>Cowbell</name><layer><filename>broken.wav</filename></layer></instrument>
</instrumentList></drumkit_info>"""
    )
    return folder


def test_a_hydrogen_kit_parses_into_keys_layers_and_distractors(tmp_path: Path) -> None:
    pytest.importorskip("soundfile")
    kit = parse_hydrogen_kit(_write_kit(tmp_path / "kit"))
    assert [(i.name, i.key, len(i.layers)) for i in kit.instruments] == [
        ("Kick", 36, 2),
        ("Closed HH", 42, 1),  # the old format: one file, no layers
        ("Finger Snaps", None, 1),
    ]  # the roll is never played; the tom without its file and the unreadable cowbell are left out
    assert kit.keys() == {36, 42} and [i.name for i in kit.distractors()] == ["Finger Snaps"]
    assert [(la.lo, la.hi) for la in kit.instruments[0].layers] == [(0.0, 0.5), (0.5, 1.0)]


def _dominant_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)[int(np.argmax(spec))])


def test_the_renderer_plays_each_hit_at_its_time_with_its_layer(tmp_path: Path) -> None:
    pytest.importorskip("soundfile")
    kit = parse_hydrogen_kit(_write_kit(tmp_path / "kit"))
    renderer = SampleRenderer([kit])
    events = [(0.5, 36, 30), (1.5, 36, 120), (2.5, 42, 100), (3.5, 28, 100), (4.5, 54, 100)]
    audio = renderer.render(kit, events, 5.5, np.random.default_rng(0))
    assert audio.shape == (int(5.5 * SAMPLE_RATE),) and np.isfinite(audio).all()
    # Silence before each hit, sound right after it: the onset is where the label says.
    for t, _, _ in events[:4]:
        s = int(t * SAMPLE_RATE)
        assert np.abs(audio[s - 400 : s - 10]).max() < 1e-3
        assert np.abs(audio[s : s + 200]).max() > 1e-2
    # Each hit is its instrument, the kick's layer chosen by velocity (pitch varies by 2 semitones at most).
    for (t, _, _), hz in zip(events[:4], (150, 400, 5000, 1200), strict=True):
        s = int(t * SAMPLE_RATE)
        assert abs(_dominant_hz(audio[s : s + 4096]) / hz - 1) < 0.15
    # A key of a class the kit lacks stays silent: the SoundFont kit plays it.
    s = int(4.5 * SAMPLE_RATE)
    assert np.abs(audio[s : s + 4000]).max() < 1e-3


def test_an_open_hat_is_choked_by_the_next_closed_hat() -> None:
    ring = np.ones(SAMPLE_RATE, np.float32)  # one second of open hat
    kit = SampleKit(
        "hats",
        (
            Instrument("open", 46, (Layer(0, 1, 1, Path("open")),)),
            Instrument("closed", 42, (Layer(0, 1, 1, Path("c")),)),
        ),
    )
    renderer = SampleRenderer([kit])
    renderer._audio = {Path("open"): ring, Path("c"): np.zeros(10, np.float32)}
    audio = renderer.render(kit, [(0.1, 46, 127), (0.4, 42, 100)], 1.5, np.random.default_rng(1))
    assert np.abs(audio[int(0.3 * SAMPLE_RATE)]) > 0.1
    assert np.abs(audio[int(0.45 * SAMPLE_RATE) :]).max() == 0.0  # cut within 20 ms of the closed hat


def test_clips_through_a_sample_kit_label_what_they_play(tmp_path: Path, monkeypatch) -> None:
    """Every label is a hit that sounds, through the sample kit (its own keys, and its distractors for
    keys of no class) or through the SoundFont kit (the rest), at the label's time."""
    pytest.importorskip("tinysoundfont", reason="the data generator needs tinysoundfont")
    pytest.importorskip("soundfile")
    if not TIMGM.is_file():
        pytest.skip("TimGM6mb.sf2 missing (Debian: timgm6mb-soundfont)")
    from training.drums import data

    kit = parse_hydrogen_kit(_write_kit(tmp_path / "kit"))
    samples = SampleRenderer([kit])
    renderer = data.Renderer((TIMGM,))
    monkeypatch.setattr(data, "SAMPLE_KIT_SHARE", 1.0)
    played: list[tuple[str, float, int]] = []
    sample_render, font_render = SampleRenderer.render, data.Renderer.render

    synths: list[frozenset[int]] = []

    def by_samples(self, kit_, events, seconds, rng, synth=frozenset()):  # type: ignore[no-untyped-def]
        synths.append(synth)
        played.extend(("samples", t, k) for t, k, _ in events)
        return sample_render(self, kit_, events, seconds, rng, synth)

    def by_font(self, events, seconds, programs):  # type: ignore[no-untyped-def]
        if data.DRUM_CHANNEL in programs:
            played.extend(("font", t, k) for t, on, ch, k, _ in events if on and ch == data.DRUM_CHANNEL)
        return font_render(self, events, seconds, programs)

    pre_roll: list[float] = []
    place = data.place_drums

    def placing(drums, **kw):  # type: ignore[no-untyped-def]
        pre_roll.append(kw["pre"])
        return place(drums, **kw)

    monkeypatch.setattr(data, "place_drums", placing)
    monkeypatch.setattr(SampleRenderer, "render", by_samples)
    monkeypatch.setattr(data.Renderer, "render", by_font)
    checked = 0
    monkeypatch.setattr(data, "SYNTH_SHAKER_SHARE", 0.5)
    for index in range(8):
        played.clear()
        audio, labels = data.make_clip(data.ClipSpec("train", index, 3, 6.0, "none"), renderer, [], samples)
        assert audio.shape == (6 * SAMPLE_RATE,) and np.isfinite(audio).all()
        own = kit.keys() | synths[-1]
        assert all(k in own or k not in KEY_TO_CLASS for who, _, k in played if who == "samples")
        assert not any(k in own for who, _, k in played if who == "font")
        pre = pre_roll[-1]
        for t, c, _ in labels:
            cls = DRUM_CLASSES[c]
            assert any(abs(u - pre - t) < 1e-6 and KEY_TO_CLASS.get(k) == cls for _, u, k in played), (t, cls)
            checked += 1
        assert any(who == "samples" for who, _, _ in played)
    assert checked > 50
    assert SHAKER_KEYS in synths and frozenset() in synths  # some clips shake our own shaker


def test_our_shaker_is_bright_noise_with_a_soft_attack_louder_when_shaken_harder() -> None:
    rng = np.random.default_rng(3)
    for _ in range(5):
        voice = synth_shaker(rng)
        soft, hard = (voice.hit(v, np.random.default_rng(0)) for v in (0.2, 0.9))
        assert np.isfinite(hard).all() and 0.04 * SAMPLE_RATE < len(hard) < 0.8 * SAMPLE_RATE
        assert np.abs(hard).max() > 2 * np.abs(soft).max()
        spec = np.abs(np.fft.rfft(hard)) ** 2
        hz = np.fft.rfftfreq(len(hard), 1 / SAMPLE_RATE)
        assert spec[hz > 2000].sum() > 0.9 * spec.sum()  # no body below 2 kHz: a shaker, not a drum
        peak = int(np.argmax(np.abs(hard)))
        assert peak > 0.002 * SAMPLE_RATE  # the attack takes milliseconds, not one sample
    other = synth_shaker(np.random.default_rng(4)).hit(0.9, np.random.default_rng(0))
    assert len(other) != len(hard) or not np.allclose(other, hard)  # a new shaker per clip
