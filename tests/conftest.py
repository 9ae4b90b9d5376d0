"""Fixtures that make their own audio: tones, chords, clicks and notes rendered with FluidSynth."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

SR = 22050
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--scale-out",
        action="store_true",
        help="run the service tests (tests/service) on the scale-out configuration: PostgreSQL, "
        "Celery workers on RabbitMQ, moto's S3 server and Redis (`make test-scale-out`)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With --scale-out, tests marked `embedded` (they check the embedded configuration itself)
    are skipped, saying so."""
    if not config.getoption("--scale-out"):
        return
    skip = pytest.mark.skip(reason="checks the embedded configuration itself (not run with --scale-out)")
    for item in items:
        if item.get_closest_marker("embedded") is not None:
            item.add_marker(skip)


def tone(
    pitch: int, start: float, end: float, *, sr: int = SR, total: float | None = None, amp: float = 0.3
) -> np.ndarray:
    """A harmonic tone (5 partials, decaying) at MIDI `pitch` between `start` and `end` seconds."""
    n = int((total if total is not None else end + 0.5) * sr)
    out = np.zeros(n, dtype=np.float32)
    t = np.arange(int((end - start) * sr)) / sr
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    wave = sum((0.6**k) * np.sin(2 * np.pi * f0 * (k + 1) * t) for k in range(5))
    env = np.minimum(1.0, t / 0.01) * np.exp(-t * 1.5) * np.minimum(1.0, (t[-1] - t) / 0.02 + 1e-3)
    s = int(start * sr)
    out[s : s + t.size] += (amp * wave * env).astype(np.float32)
    return out


def melody(notes: list[tuple[int, float, float]], total: float, *, sr: int = SR) -> np.ndarray:
    """Sum of `tone`s: (pitch, start, end) each."""
    out = np.zeros(int(total * sr), dtype=np.float32)
    for p, s, e in notes:
        out += tone(p, s, e, sr=sr, total=total)
    return out


def render_midi(midi_path: Path, wav_path: Path, *, sr: int = 44100) -> Path:
    """Render a MIDI file with FluidSynth and the GM SoundFont; skips the test when either is missing."""
    if shutil.which("fluidsynth") is None or not SOUNDFONT.is_file():
        pytest.skip("FluidSynth or FluidR3_GM.sf2 missing (Debian: fluidsynth fluid-soundfont-gm)")
    subprocess.run(
        [
            "fluidsynth",
            "-ni",
            "-q",
            "-g",
            "0.6",
            "-F",
            str(wav_path),
            "-r",
            str(sr),
            str(SOUNDFONT),
            str(midi_path),
        ],
        check=True,
        capture_output=True,
    )
    return wav_path


class Signals:
    """The synthetic-signal makers, handed to tests as the `signals` fixture."""

    sr = SR
    tone = staticmethod(tone)
    melody = staticmethod(melody)
    render_midi = staticmethod(render_midi)


@pytest.fixture(scope="session")
def signals() -> type[Signals]:
    return Signals


@pytest.fixture(scope="session")
def transcriber():
    from stemscribe import Transcriber

    return Transcriber(drums="dsp")


@pytest.fixture(scope="session")
def rendered_band(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pretty_midi.PrettyMIDI]:  # noqa: F821
    """A 6-second bass + piano + drums clip rendered with FluidSynth, and its MIDI (the ground truth)."""
    import pretty_midi

    folder = tmp_path_factory.mktemp("band")
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    bass = pretty_midi.Instrument(33)
    piano = pretty_midi.Instrument(0)
    drums = pretty_midi.Instrument(0, is_drum=True)
    for i, root in enumerate([40, 45, 43, 38, 40, 45]):
        t = i * 1.0
        bass.notes.append(pretty_midi.Note(100, root, t + 0.1, t + 0.9))
        for p in (root + 24, root + 28, root + 31):
            piano.notes.append(pretty_midi.Note(80, p, t + 0.1, t + 0.9))
        drums.notes.append(pretty_midi.Note(110, 36, t + 0.1, t + 0.2))
        drums.notes.append(pretty_midi.Note(100, 38, t + 0.6, t + 0.7))
    pm.instruments.extend([bass, piano, drums])
    mid = folder / "band.mid"
    pm.write(str(mid))
    wav = render_midi(mid, folder / "band.wav")
    return wav, pm


# --- a corpus of hostile and broken inputs (issue #14) ----------------------------------------------


def wav_bytes(
    *,
    sr: int = 16000,
    channels: int = 1,
    bits: int = 16,
    data: bytes = b"\0" * 3200,
    declared: int | None = None,
) -> bytes:
    """A PCM WAV built by hand, so its header can say anything (0 bits, 2^31-1 Hz, a longer data chunk)."""
    import struct

    align = channels * bits // 8
    size = len(data) if declared is None else declared
    fmt = struct.pack("<IHHIIHH", 16, 1, channels, sr, sr * align, align, bits)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + size)
        + b"WAVE"
        + b"fmt "
        + fmt
        + b"data"
        + struct.pack("<I", size)
        + data
    )


def silent_flac(path: Path, *, channels: int, sr: int, seconds: float) -> Path:
    """Silence as FLAC, written block by block (a few KB on disk however long it is)."""
    import soundfile as sf

    block = np.zeros((65536, channels), dtype=np.int16)
    left = int(seconds * sr)
    with sf.SoundFile(path, "w", samplerate=sr, channels=channels, format="FLAC", subtype="PCM_16") as f:
        while left > 0:
            n = min(left, block.shape[0])
            f.write(block[:n])
            left -= n
    return path


def bad_corpus(tmp_path: Path) -> dict[str, bytes]:
    """Inputs a hostile or careless user sends: each must end in a result or one clear refusal.

    Names map to bytes; "ok_" files are valid audio, every other one must be refused.
    """
    import io

    import soundfile as sf

    t = np.arange(16000) / 16000
    good = io.BytesIO()
    sf.write(good, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000, format="WAV")
    flac = silent_flac(tmp_path / "bomb.flac", channels=8, sr=655350, seconds=10.0).read_bytes()
    png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(200)
    rng = np.random.default_rng(14)
    return {
        "ok_tone.wav": good.getvalue(),
        "empty.wav": b"",
        "text.wav": b"not audio at all " * 40,
        "random.bin": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "picture.png.mp3": png,
        "zero_bits.wav": wav_bytes(bits=0),
        "huge_rate.wav": wav_bytes(sr=2**31 - 1),
        "many_channels.wav": wav_bytes(channels=64, data=b"\0" * 64 * 2 * 100),
        "header_only.wav": wav_bytes(data=b""),
        "truncated.wav": good.getvalue()[:2000],
        "lying_length.wav": wav_bytes(data=b"\0" * 3200, declared=0x7FFFFFF0),
        "bomb_8ch_655khz.flac": flac,
        "zip.mp3": b"PK\x03\x04" + bytes(300),
        "id3_only.mp3": b"ID3\x04\0\0\0\0\0\x10" + bytes(16),
    }


class Hostile:
    """The hostile-input makers above, for tests in sub-packages (which cannot import this module)."""

    wav_bytes = staticmethod(wav_bytes)
    silent_flac = staticmethod(silent_flac)
    corpus = staticmethod(bad_corpus)


@pytest.fixture
def hostile() -> type[Hostile]:
    return Hostile


# The local PostgreSQL the `services` tests use (`.ci/run` starts it when it stopped).
PG_DSN = os.environ.get("STEMSCRIBE_TEST_PG", "host=127.0.0.1 port=5432 dbname=test user=postgres")


@contextlib.contextmanager
def postgres_schema(prefix: str) -> Iterator[str]:
    """A SQLAlchemy URL whose search path is a fresh schema, dropped afterwards; skips the test, saying
    why, when psycopg or the server is missing."""
    psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")
    try:
        admin = psycopg.connect(PG_DSN, connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable ({PG_DSN}): {exc}")
    schema = f"{prefix}{secrets.token_hex(4)}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    params = dict(p.split("=", 1) for p in PG_DSN.split())
    url = (
        f"postgresql+psycopg://{params.get('user', 'postgres')}@{params.get('host', '127.0.0.1')}:"
        f"{params.get('port', '5432')}/{params.get('dbname', 'test')}?options=-csearch_path%3D{schema}"
    )
    try:
        yield url
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


def export_firing_network(path: Path) -> Path:
    """Random transcription-network weights (torch, the train extra) whose onset and frame heads fire
    everywhere, exported to `path`, so every stage downstream of the network runs."""
    import torch

    from training.transcriber.export import export_net
    from training.transcriber.model import NoteNet

    torch.manual_seed(0)
    net = NoteNet(4).eval()
    with torch.no_grad():
        net.head.bias[0] = 2.0
        net.head.bias[1] = 2.0
    export_net(net, path, np.tile([0.05, 0.05], (10, 1)), {"step": "0"})
    return path
