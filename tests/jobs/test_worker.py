"""The worker on its own: a temp SQLite store, local storage, a fake transcriber; no HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from stemscribe.errors import CorruptAudioError, InvalidOptionError, ModelError, SeparationUnavailableError
from stemscribe.jobs.models import TaskState
from stemscribe.jobs.storage import LocalStorage, result_key
from stemscribe.jobs.store import SqlJobStore
from stemscribe.jobs.worker import Worker, error_code
from stemscribe.settings import Settings


@pytest.fixture
def worker(settings: Settings, store: SqlJobStore, storage: LocalStorage, fake: Any) -> Worker:
    return Worker(settings, store, storage, lambda _s: fake, worker_id="test:1")


def test_an_empty_queue_gives_no_work(worker: Worker) -> None:
    assert worker.run_once() is False


def test_a_transcription_stores_its_artifacts(
    worker: Worker,
    store: SqlJobStore,
    storage: LocalStorage,
    song: bytes,
    add_audio: Callable[..., Any],
    add_task: Callable[..., Any],
) -> None:
    task = add_task(add_audio(song))
    assert worker.run_once() is True
    done = store.get_task(task.id, None)
    assert done is not None and done.state is TaskState.SUCCEEDED
    assert done.stage == "done" and done.progress == 1.0 and done.worker_id is None
    assert done.output == {"note_count": 2, "instrument_count": 1, "duration": 2.0}
    result = json.loads(storage.get_bytes(result_key(task.id, "result.json")))
    assert len(result["instruments"][0]["notes"]) == 2
    for name in ("result.mid", "result.quantized.mid"):
        assert storage.get_bytes(result_key(task.id, name)).startswith(b"MThd")


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (CorruptAudioError("truncated"), "bad_audio"),
        (InvalidOptionError("no such stem"), "invalid_option"),
        (SeparationUnavailableError("no demucs"), "separation_unavailable"),
        (ModelError("bad weights"), "model_error"),
        (RuntimeError("boom"), "internal_error"),
    ],
)
def test_a_failure_is_stored_with_its_code(
    worker: Worker,
    store: SqlJobStore,
    fake: Any,
    song: bytes,
    add_audio: Callable[..., Any],
    add_task: Callable[..., Any],
    exc: Exception,
    code: str,
) -> None:
    fake.fail = exc
    task = add_task(add_audio(song))
    assert worker.run_once()
    done = store.get_task(task.id, None)
    assert done is not None and done.state is TaskState.FAILED
    assert done.error_code == code == error_code(exc)
    assert str(exc) in (done.error_message or "")


def test_a_finished_task_with_a_callback_queues_one_delivery(
    worker: Worker,
    store: SqlJobStore,
    song: bytes,
    add_audio: Callable[..., Any],
    add_task: Callable[..., Any],
) -> None:
    task = add_task(add_audio(song), callback_url="https://example.test/hook")
    worker.run_once()
    (delivery,) = store.deliveries_for_task(task.id)
    assert delivery.url == "https://example.test/hook" and delivery.attempts == 0


def test_gone_audio_fails_as_bad_audio(
    worker: Worker,
    store: SqlJobStore,
    storage: LocalStorage,
    song: bytes,
    add_audio: Callable[..., Any],
    add_task: Callable[..., Any],
) -> None:
    audio = add_audio(song)
    store.mark_purged([], [audio.id], 0.0)
    task = add_task(audio)
    worker.run_once()
    done = store.get_task(task.id, None)
    assert done is not None and done.state is TaskState.FAILED and done.error_code == "bad_audio"


def test_progress_reaches_the_store(
    worker: Worker,
    store: SqlJobStore,
    song: bytes,
    add_audio: Callable[..., Any],
    add_task: Callable[..., Any],
) -> None:
    task = add_task(add_audio(song))
    claimed = store.claim_task(worker.worker_id, 30.0)
    assert claimed is not None and claimed.id == task.id and claimed.state is TaskState.RUNNING
    assert store.report_progress(task.id, worker.worker_id, "transcribing", 0.5, 30.0)
    peeked = store.peek_task(task.id, None)
    assert peeked is not None and peeked.stage == "transcribing" and peeked.state is TaskState.RUNNING
    assert not store.report_progress(task.id, "someone-else", "transcribing", 0.6, 30.0)
