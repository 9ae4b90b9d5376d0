from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemscribe.audio import from_array, load_audio
from stemscribe.errors import AudioTooLongError, CorruptAudioError, EmptyAudioError, NotAudioError


@pytest.fixture
def wav(tmp_path: Path, signals) -> Path:
    tone = signals.tone
    path = tmp_path / "a.wav"
    stereo = np.stack(
        [tone(69, 0.0, 1.0, sr=44100, total=1.0), tone(76, 0.0, 1.0, sr=44100, total=1.0)], axis=1
    )
    sf.write(path, stereo, 44100)
    return path


def test_wav_is_resampled_and_mixed_down(wav: Path) -> None:
    audio = load_audio(wav)
    assert audio.sr == 22050 and audio.samples.ndim == 1
    assert abs(audio.duration - 1.0) < 1e-3
    stereo = load_audio(wav, sr=None, mono=False)
    assert stereo.samples.shape == (2, 44100) and stereo.sr == 44100


@pytest.mark.parametrize("fmt", ["flac", "ogg", "aiff", "mp3", "m4a", "opus"])
def test_common_formats_decode(tmp_path: Path, wav: Path, fmt: str) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg missing (Debian: ffmpeg)")
    out = tmp_path / f"a.{fmt}"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), str(out)], check=True)
    audio = load_audio(out)
    assert abs(audio.duration - 1.0) < 0.08  # codecs pad by a frame or two
    assert float(np.abs(audio.samples).max()) > 0.1


def test_bytes_and_streams(wav: Path) -> None:
    data = wav.read_bytes()
    assert load_audio(data).samples.shape == load_audio(io.BytesIO(data)).samples.shape


def test_not_audio_names_every_decoder(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("this is not audio\n" * 50)
    with pytest.raises(NotAudioError) as err:
        load_audio(path)
    assert "soundfile" in str(err.value) and "pyav" in str(err.value)


def test_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(NotAudioError, match="no such file"):
        load_audio(tmp_path / "nope.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(EmptyAudioError):
        load_audio(tmp_path / "empty.wav")
    with pytest.raises(EmptyAudioError):
        load_audio(b"")


def test_header_only_wav_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros((0,), dtype=np.float32), 22050)
    with pytest.raises(EmptyAudioError):
        load_audio(path)


def test_truncated_wav_is_corrupt(wav: Path) -> None:
    data = wav.read_bytes()
    with pytest.raises(CorruptAudioError, match="truncated"):
        load_audio(data[: len(data) // 3])


def test_too_long(wav: Path) -> None:
    with pytest.raises(AudioTooLongError, match="limit"):
        load_audio(wav, max_duration=0.5)
    with pytest.raises(AudioTooLongError):
        from_array(np.zeros(22050 * 3), 22050, max_duration=2.0)


def test_arrays_any_layout() -> None:
    x = np.zeros((44100, 2), dtype=np.float32)
    assert from_array(x, 44100).samples.shape == (22050,)
    assert from_array((np.ones(1000) * 1000).astype(np.int16), 22050).samples.max() < 0.1
    with pytest.raises(CorruptAudioError):
        from_array(np.array([0.0, np.nan, 0.0]), 22050)
    with pytest.raises(EmptyAudioError):
        from_array(np.zeros(0), 22050)
    with pytest.raises(NotAudioError):
        from_array(np.zeros((2, 2, 2)), 22050)


# --- issue #14: what decoding may cost is bounded before decoding -------------------------------------

_PEAK = """
import json, resource, sys
from stemscribe.audio import DecodeLimits, load_audio, scan_audio
import soundfile, av, soxr  # decoders loaded before the baseline
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
outcome = "ok"
try:
    {call}
except Exception as exc:
    outcome = type(exc).__name__ + ": " + str(exc)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"grew_mb": (after - before) / 1024, "outcome": outcome}}))
"""


def _peak(call: str) -> dict:
    """Run one decode in a fresh interpreter; how much its peak RSS grew and what it raised."""
    import json
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", _PEAK.format(call=call)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_decode_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    """Row 1: 56 KB of 8-channel 655,350 Hz FLAC silence grew a decode by 230 MB; now refused unread."""
    from .conftest import silent_flac

    bomb = silent_flac(tmp_path / "bomb.flac", channels=8, sr=655350, seconds=10.0)
    assert bomb.stat().st_size < 100_000
    for call in (f"load_audio({str(bomb)!r}, sr=None)", f"scan_audio({str(bomb)!r})"):
        got = _peak(call)
        assert got["outcome"].startswith("AudioLimitError") and "655350 Hz" in got["outcome"], got
        assert got["grew_mb"] < 30, got


def test_decoding_streams_and_downmixes(tmp_path: Path) -> None:
    """Row 1: a big file inside the limits is decoded block by block: scanning holds no samples, and
    a mono load holds its mono samples (not every channel as float32, as a whole-file read did)."""
    from .conftest import silent_flac

    path = silent_flac(tmp_path / "wide.flac", channels=8, sr=96000, seconds=30.0)
    scanned = _peak(f"info = scan_audio({str(path)!r}); assert info.frames == 96000 * 30")
    assert scanned["outcome"] == "ok" and scanned["grew_mb"] < 40, scanned
    mono_mb = 96000 * 30 * 4 / 2**20  # 11 MB; all eight channels as float32 would be 88 MB
    loaded = _peak(f"a = load_audio({str(path)!r}, sr=None); assert a.samples.shape == (96000 * 30,)")
    assert loaded["outcome"] == "ok" and loaded["grew_mb"] < mono_mb + 40, loaded


def test_decode_limits_name_what_they_refuse(tmp_path: Path) -> None:
    from stemscribe.audio import DecodeLimits, scan_audio
    from stemscribe.errors import AudioLimitError, AudioTooLargeError

    from .conftest import silent_flac

    path = silent_flac(tmp_path / "quad.flac", channels=4, sr=48000, seconds=2.0)
    with pytest.raises(AudioTooLargeError, match="4 channel.*48000 Hz.*384,000 samples") as info:
        scan_audio(path, limits=DecodeLimits(max_samples=100_000))
    assert info.value.limit == "max_samples"
    with pytest.raises(AudioLimitError, match="4 channels are above the limit of 2") as info2:
        load_audio(path, limits=DecodeLimits(max_channels=2))
    assert info2.value.limit == "max_channels"
    assert scan_audio(path).frames == 96000


def test_broken_headers_are_refused_cleanly(tmp_path: Path) -> None:
    """Row 2: a WAV saying 0 bits per sample raised AttributeError in the PyAV fallback; row 12: a
    WAV at 2^31-1 Hz decoded to 2e-5 s."""
    from stemscribe.errors import AudioLimitError

    from .conftest import wav_bytes

    with pytest.raises(CorruptAudioError, match="tried soundfile.*pyav"):
        load_audio(wav_bytes(bits=0))
    with pytest.raises(AudioLimitError, match="sample rate 2147483647 Hz is above the limit"):
        load_audio(wav_bytes(sr=2**31 - 1))


def test_a_picture_named_mp3_is_one_clear_error(tmp_path: Path) -> None:
    """Row 15: no C-library noise on stderr, and no claim that an existing file does not exist."""
    import sys

    path = tmp_path / "picture.png.mp3"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(200))
    code = f"from stemscribe.audio import load_audio\nload_audio({str(path)!r})"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    last = proc.stderr.strip().splitlines()[-1]
    assert "Illegal Audio-MPEG-Header" not in proc.stderr and "does not exist" not in proc.stderr
    assert last.startswith("stemscribe.errors.NotAudioError:") and "a PNG image" in last and "tried" in last


@pytest.mark.parametrize("channels", range(1, 10))
def test_downmix_is_numpys_mean_bit_for_bit(channels: int) -> None:
    from stemscribe.audio import _downmix

    rng = np.random.default_rng(channels)
    block = rng.standard_normal((4099, channels)).astype(np.float32)
    block[:20] = -0.0  # the sign of a silent sample too
    want = block.mean(axis=1, dtype=np.float32)
    assert np.array_equal(_downmix(block).view(np.uint32), want.view(np.uint32))
