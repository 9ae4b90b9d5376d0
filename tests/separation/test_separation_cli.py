"""`stemscribe separate` and `stemscribe models list|fetch`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import typer
from typer.testing import CliRunner

from stemscribe.separation import weights
from stemscribe.separation.cli import register

SR = 22050


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """stemscribe"""

    register(app)
    register(app)  # idempotent
    return app


@pytest.fixture
def song(tmp_path: Path) -> Path:
    """Two seconds of stereo: a tone on the left, clicks on both sides."""
    t = np.arange(2 * SR) / SR
    tone = 0.3 * np.sin(2 * np.pi * 220 * t)
    clicks = np.zeros_like(t)
    clicks[:: SR // 4] = 0.8
    path = tmp_path / "song.wav"
    sf.write(path, np.stack([tone + clicks, 0.5 * tone + clicks], axis=1), SR)
    return path


def run(app: typer.Typer, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_hpss_always_works(app: typer.Typer, song: Path, tmp_path: Path) -> None:
    code, out, err = run(
        app, "separate", str(song), "-o", str(tmp_path / "out"), "--model", "hpss", "--quiet"
    )
    assert code == 0, err
    paths = [Path(p) for p in out.split()]
    assert [p.name for p in paths] == ["drums.wav", "harmonic.wav"]
    mix, _ = sf.read(song, dtype="float32")
    total = 0
    for path in paths:
        data, sr = sf.read(path, dtype="float32")
        assert sr == SR and data.shape == mix.shape
        total = total + data
    np.testing.assert_allclose(total, mix, atol=2e-3)  # soft masks sum to one; 16-bit rounding


def test_hpss_has_no_vocals(app: typer.Typer, song: Path, tmp_path: Path) -> None:
    code, _, err = run(app, "separate", str(song), "-o", str(tmp_path), "--model", "hpss", "--stems", "stems")
    assert code == 1 and err.startswith("InvalidOptionError:") and "no vocals" in err


def test_missing_weights_is_one_line_naming_the_fetch_command(
    app: typer.Typer, song: Path, tmp_path: Path, data_root: Path
) -> None:
    code, out, err = run(app, "separate", str(song), "-o", str(tmp_path / "out"))
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "stemscribe models fetch demucs" in lines[0], err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "nope"], "unknown model 'nope'"),
        (["--stems", "some"], "unknown stem set 'some'"),
        (["--format", "mp3"], "wav or flac"),
        (["--format", "flac", "--float"], "--float needs --format wav"),
    ],
)
def test_bad_options(app: typer.Typer, song: Path, tmp_path: Path, args: list[str], message: str) -> None:
    code, _, err = run(app, "separate", str(song), "-o", str(tmp_path), *args)
    assert code == 1 and message in err


def test_bad_input(app: typer.Typer, tmp_path: Path) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio at all" * 10)
    code, _, err = run(app, "separate", str(junk), "-o", str(tmp_path), "--model", "hpss")
    assert code == 1 and err.startswith("NotAudioError:")


@pytest.mark.separation
@pytest.mark.parametrize(
    "stems, names",
    [("all_stems", ["drums", "bass", "other", "vocals"]), ("stems", ["vocals", "instrumental"])],
)
def test_demucs_writes_one_file_per_stem(
    app: typer.Typer,
    song: Path,
    tmp_path: Path,
    install_tiny: Callable[..., object],
    stems: str,
    names: list[str],
) -> None:
    install_tiny("tiny")
    outdir = tmp_path / "out"
    code, out, err = run(
        app, "separate", str(song), "-o", str(outdir), "--model", "tiny", "--stems", stems, "--float"
    )
    assert code == 0, err
    paths = [Path(p) for p in out.split()]
    assert paths == [outdir / "song" / f"{n}.wav" for n in names]
    mix, _ = sf.read(song, dtype="float32")
    parts = {}
    for path in paths:
        data, sr = sf.read(path, dtype="float32")
        assert sr == SR and data.shape == mix.shape
        parts[path.stem] = data
    if stems == "stems":
        np.testing.assert_allclose(parts["vocals"] + parts["instrumental"], mix, atol=1e-5)


@pytest.mark.separation
def test_demucs_flac_output(
    app: typer.Typer, song: Path, tmp_path: Path, install_tiny: Callable[..., object]
) -> None:
    install_tiny("tiny6", kind="six")
    code, out, err = run(
        app, "separate", str(song), "-o", str(tmp_path), "-m", "tiny6", "--format", "flac", "--quiet"
    )
    assert code == 0, err
    assert [Path(p).name for p in out.split()] == [
        f"{s}.flac" for s in ("drums", "bass", "other", "vocals", "guitar", "piano")
    ]
    info = sf.info(out.split()[0])
    assert info.format == "FLAC" and info.samplerate == SR and info.channels == 2


def test_models_list_shows_state_and_paths(app: typer.Typer, data_root: Path) -> None:
    code, out, err = run(app, "models", "list", "--json")
    assert code == 0, err
    payload = json.loads(out)
    by_name = {m["name"]: m for m in payload["models"]}
    assert by_name["htdemucs"]["state"] == "missing"
    assert by_name["htdemucs"]["files"][0]["path"] == str(
        data_root / "models" / "demucs" / "955717e8-8726e21a.th"
    )
    assert by_name["htdemucs_6s"]["stems"][-2:] == ["guitar", "piano"]
    code, out, _ = run(app, "models", "list")
    assert code == 0 and "htdemucs" in out and "missing" in out and "hpss" in out


def test_models_fetch_from_a_folder(
    app: typer.Typer,
    data_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_spec: Callable[..., object],
) -> None:
    payload = b"weights" * 100
    spec = make_spec("fake", [payload])
    monkeypatch.setitem(weights.MODELS, "fake", spec)
    usb = tmp_path / "usb"
    usb.mkdir()
    code, _, err = run(app, "models", "fetch", "demucs", "--model", "fake", "--from", str(usb))
    assert code == 1 and err.startswith("ModelError:") and spec.files[0].filename in err
    (usb / spec.files[0].filename).write_bytes(payload)
    code, out, err = run(app, "models", "fetch", "demucs", "--model", "fake", "--from", str(usb), "--quiet")
    assert code == 0, err
    assert out.strip() == f"fake: ok in {data_root / 'models' / 'demucs'}"
    code, out, _ = run(app, "models", "list", "--json")
    assert {m["name"]: m["state"] for m in json.loads(out)["models"]}["fake"] == "ok"


def test_models_fetch_rejects_unknown_names(app: typer.Typer, data_root: Path) -> None:
    code, _, err = run(app, "models", "fetch", "spleeter")
    assert code == 1 and "unknown backend 'spleeter'" in err
    code, _, err = run(app, "models", "fetch", "demucs", "--model", "nope")
    assert code == 1 and "unknown separation model 'nope'" in err


def test_models_list_and_hpss_work_without_torch(tmp_path: Path, song: Path) -> None:
    """With torch and demucs unimportable, listing works and `separate` still runs hpss."""
    script = f"""
import sys
sys.modules["torch"] = None
sys.modules["demucs"] = None
import typer
from typer.testing import CliRunner
from stemscribe.separation.cli import register
from stemscribe.separation.base import get_separator
from stemscribe.errors import SeparationUnavailableError
app = typer.Typer()
app.callback()(lambda: None)
register(app)
r = CliRunner().invoke(app, ["models", "list", "--json"])
assert r.exit_code == 0, r.output
import json
payload = json.loads(r.stdout)
assert payload["torch"] is False
args = ["separate", {str(song)!r}, "-o", {str(tmp_path / "o")!r}, "-m", "hpss", "--quiet"]
r = CliRunner().invoke(app, args)
assert r.exit_code == 0, r.output
try:
    get_separator("demucs")
except SeparationUnavailableError as exc:
    assert "stemscribe[separation]" in str(exc), exc
else:
    raise AssertionError("demucs built without torch")
assert "torch" not in [m for m in sys.modules if sys.modules[m] is not None]
print("ok")
"""
    env = {"STEMSCRIBE_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


class HalfAndHalf:
    """A fake streaming separator (the Protocol plus `iter_separate`): two stems, each half the mix."""

    name = "halves"

    def __init__(self, fail_after: int | None = None) -> None:
        self.fail_after = fail_after

    def stem_names(self) -> tuple[str, ...]:
        return ("vocals", "rest")

    def iter_separate(self, audio, *, progress=None):  # noqa: ANN001, ANN201
        block = 1000
        for i, start in enumerate(range(0, audio.samples.shape[-1], block)):
            if self.fail_after is not None and i >= self.fail_after:
                raise OSError("disk on fire")
            piece = audio.samples[..., start : start + block] * 0.5
            yield start, {"vocals": piece, "rest": piece}

    def separate(self, audio, *, progress=None):  # noqa: ANN001, ANN201
        raise AssertionError("write_stems streams when it can")


def test_write_stems_streams_and_leaves_nothing_on_failure(tmp_path: Path, song: Path) -> None:
    from stemscribe.audio import load_audio
    from stemscribe.separation.files import write_stems

    audio = load_audio(song, sr=None, mono=False)
    written = write_stems(HalfAndHalf(), audio, tmp_path / "ok", stem_set="stems", float_out=True)
    assert list(written) == ["vocals", "instrumental"]
    vocals, _ = sf.read(written["vocals"], dtype="float32")
    rest, _ = sf.read(written["instrumental"], dtype="float32")
    np.testing.assert_allclose(vocals + rest, audio.samples.T, atol=1e-6)

    with pytest.raises(OSError, match="disk on fire"):
        write_stems(HalfAndHalf(fail_after=3), audio, tmp_path / "broken")
    assert list((tmp_path / "broken").iterdir()) == []
