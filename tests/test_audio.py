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
