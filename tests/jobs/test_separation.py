"""The service's separation is the library's: same stem sets, same writer, byte-identical files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from stemscribe.cli import app as cli_app
from stemscribe.cli import register_commands
from stemscribe.jobs.models import TaskKind, TaskState
from stemscribe.jobs.separation import stem_set_of, stem_title
from stemscribe.jobs.storage import LocalStorage
from stemscribe.jobs.store import SqlJobStore
from stemscribe.jobs.worker import Worker
from stemscribe.separation.stemsets import STEM_TITLES, StemSet
from stemscribe.settings import Settings


@pytest.fixture
def no_demucs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the Demucs backend is unavailable, so all_stems takes the HPSS fallback."""
    import stemscribe.jobs.separation as sep

    monkeypatch.setattr(sep, "_unavailable_reason", lambda name: "weights not fetched")


def test_modes_map_onto_the_library_stem_sets() -> None:
    assert stem_set_of("stems") is stem_set_of("separate_vocal") is StemSet.stems
    assert stem_set_of("all_stems") is stem_set_of("split_stem") is StemSet.all_stems
    assert stem_title("Song", "piano", "all_stems") == f"Song ({STEM_TITLES['piano']})" == "Song (Keyboard)"
    assert stem_title("Song", "vocals", "stems") == "Song - Vocals"


def test_cli_and_service_write_byte_identical_stems(
    tmp_path: Path,
    no_demucs: None,
    settings: Settings,
    store: SqlJobStore,
    storage: LocalStorage,
    song: bytes,
    fake: Any,
    add_audio: Any,
    add_task: Any,
) -> None:
    data = song
    path = tmp_path / "song.wav"
    path.write_bytes(data)
    out = tmp_path / "cli"
    args = ["separate", str(path), "--model", "hpss", "--stems", "all_stems", "--format", "flac"]
    register_commands()
    run = CliRunner().invoke(cli_app, [*args, "-o", str(out), "--quiet"])
    assert run.exit_code == 0, run.output
    cli_stems = {p.stem: p.read_bytes() for p in (out / "song").iterdir()}
    assert set(cli_stems) == {"drums", "harmonic"}

    audio = add_audio(data)
    task = add_task(audio, kind=TaskKind.SEPARATE, mode="all_stems")
    worker = Worker(settings, store, storage, lambda _s: fake)
    assert worker.run_once()
    done = store.get_task(task.id, None)
    assert done is not None and done.state is TaskState.SUCCEEDED, done and done.error_message
    assert done.output is not None and done.output["separator"] == "hpss"
    service_stems = {}
    for item in done.output["stems"]:
        record = store.get_audio(item["audio_id"], None)
        assert record is not None and record.content_type == "audio/flac"
        service_stems[item["name"]] = storage.get_bytes(record.storage_key)
    assert service_stems == cli_stems
