"""`stemscribe transcribe` end to end, in a subprocess as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import soundfile as sf


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stemscribe", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_help_explains_every_option() -> None:
    out = run("transcribe", "--help").stdout
    options = ("--outdir", "--stem", "--quantize", "--json", "--separator", "--drums", "--max-duration")
    for option in (*options, "--no-verify", "--score"):
        assert option in out


def test_transcribe_writes_json_and_midi(tmp_path: Path, signals) -> None:
    wav = tmp_path / "line.wav"
    sf.write(wav, signals.melody([(45, 0.2, 0.8), (48, 0.8, 1.4)], 2.0), signals.sr)
    proc = run("transcribe", str(wav), "-o", str(tmp_path / "out"), "--stem", "bass", "--quantize")
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "out" / "line.json").read_text())
    assert [n["pitch"] for n in data["instruments"][0]["notes"]] == [45, 48]
    pm = pretty_midi.PrettyMIDI(str(tmp_path / "out" / "line.mid"))
    assert [n.pitch for n in pm.instruments[0].notes] == [45, 48]
    assert (tmp_path / "out" / "line.quantized.mid").is_file()
    assert "line.wav" in proc.stdout


def test_score_writes_musicxml_pages_and_pdf(tmp_path: Path, signals) -> None:
    import music21

    wav = tmp_path / "tune.wav"
    melody = [(60 + p, 0.25 + 0.5 * i, 0.7 + 0.5 * i) for i, p in enumerate([0, 4, 7, 12, 7, 4, 0, 0])]
    sf.write(wav, signals.melody(melody, 4.5), signals.sr)
    out = tmp_path / "out"
    proc = run("transcribe", str(wav), "-o", str(out), "--stem", "piano", "--score")
    assert proc.returncode == 0, proc.stderr
    data = json.loads((out / "tune.json").read_text())
    assert {"time_signature", "downbeats", "key", "chords"} <= set(data)
    score = music21.converter.parse(str(out / "tune.musicxml"))
    assert len(score.parts) == len(data["instruments"])
    assert (out / "tune-1.svg").read_text().lstrip().startswith(("<svg", "<?xml"))
    assert (out / "tune.pdf").read_bytes().startswith(b"%PDF")
    assert "tune.musicxml" in proc.stdout and "score: " in proc.stdout


def test_score_without_the_extra_fails_first_in_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "blocked" / "verovio"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('No module named verovio')\n")
    wav = tmp_path / "x.wav"
    sf.write(wav, np.zeros(22050, np.float32), 22050)
    env = {**os.environ, "PYTHONPATH": str(blocker.parent)}
    proc = subprocess.run(
        [sys.executable, "-m", "stemscribe", "transcribe", str(wav), "-o", str(tmp_path / "o"), "--score"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ScoreUnavailableError: ")
    assert "verovio" in lines[0] and "stemscribe[score]" in lines[0]
    assert not (tmp_path / "o").exists()  # failed before transcribing anything


def test_no_verify_decodes_with_thresholds_alone(tmp_path: Path, signals) -> None:
    wav = tmp_path / "line.wav"
    sf.write(wav, signals.melody([(57, 0.2, 0.7), (60, 0.7, 1.3), (64, 1.3, 1.9)], 2.2), signals.sr)
    for flag in ("--verify", "--no-verify"):
        out = tmp_path / flag.strip("-")
        proc = run("transcribe", str(wav), "-o", str(out), "--stem", "vocals", flag, "--quiet")
        assert proc.returncode == 0, proc.stderr
        data = json.loads((out / "line.json").read_text())
        assert [n["pitch"] for n in data["instruments"][0]["notes"]] == [57, 60, 64]


def test_json_path_goes_exactly_there(tmp_path: Path, signals) -> None:
    wav = tmp_path / "x.wav"
    sf.write(wav, np.zeros(22050, np.float32), 22050)
    target = tmp_path / "deep" / "result.json"
    proc = run("transcribe", str(wav), "-o", str(tmp_path / "o"), "--json", str(target))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(target.read_text())["instruments"] == []
    two = run("transcribe", str(wav), str(wav), "--json", str(target))
    assert two.returncode != 0 and "exactly one input" in two.stderr


def test_bad_inputs_fail_with_one_line(tmp_path: Path) -> None:
    text = tmp_path / "readme.txt"
    text.write_text("not audio at all " * 40)
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    cases = {
        str(text): "NotAudioError",
        str(empty): "EmptyAudioError",
        str(tmp_path / "missing.wav"): "NotAudioError",
    }
    for path, error in cases.items():
        proc = run("transcribe", path, "-o", str(tmp_path / "o"))
        assert proc.returncode == 1
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(error), proc.stderr
    proc = run("transcribe", str(text), "--stem", "kazoo")
    assert proc.returncode == 1 and "InvalidOptionError" in proc.stderr


def test_too_long_is_refused(tmp_path: Path) -> None:
    wav = tmp_path / "long.wav"
    sf.write(wav, np.zeros(22050 * 3, np.float32), 22050)
    proc = run("transcribe", str(wav), "--max-duration", "2")
    assert proc.returncode == 1 and "AudioTooLongError" in proc.stderr


def test_bad_input_corpus_gets_one_line_each(tmp_path: Path) -> None:
    """Issue #14: every file of the corpus ends in a result or one `Type: message` line naming it;
    no C-library noise, no traceback, no hang, exit 1 because some failed."""
    from .conftest import bad_corpus

    paths = []
    for name, data in bad_corpus(tmp_path).items():
        (tmp_path / "in").mkdir(exist_ok=True)
        (path := tmp_path / "in" / name).write_bytes(data)
        paths.append(path)
    proc = run("transcribe", *map(str, paths), "-o", str(tmp_path / "o"), "--quiet")
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    bad = [p for p in paths if not p.name.startswith("ok_")]
    assert len(lines) == len(bad), proc.stderr
    for path in bad:
        (line,) = [x for x in lines if str(path) in x]
        assert line.split(":")[0].endswith("Error") and not line.startswith("InternalError"), line
    assert "a PNG image" in next(x for x in lines if "picture.png.mp3" in x)
    assert "does not exist" not in proc.stderr
    assert (tmp_path / "o" / "ok_tone.json").is_file()
