"""The runner: thread workers drain the queue, stop cleanly, and tasks of dead workers are queued again."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from stemscribe.jobs.models import TaskState
from stemscribe.jobs.runner import LocalRunner, dead_local_workers
from stemscribe.jobs.storage import LocalStorage
from stemscribe.jobs.store import SqlJobStore
from stemscribe.jobs.worker import worker_identity
from stemscribe.settings import Settings


def _wait_state(store: SqlJobStore, task_id: str, state: TaskState, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = store.peek_task(task_id, None)
        if task is not None and task.state is state:
            return
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} never reached {state}")


def test_thread_workers_drain_the_queue_and_stop(
    settings: Settings,
    store: SqlJobStore,
    storage: LocalStorage,
    fake: Any,
    song: bytes,
    add_audio: Callable[..., Any],
    add_task: Callable[..., Any],
) -> None:
    runner = LocalRunner(
        settings, store, storage, transcriber_factory=lambda _s: fake, count=2, threads=True, supervise_s=0.1
    )
    runner.start()
    try:
        assert runner.alive() == 2
        tasks = [add_task(add_audio(song)) for _ in range(3)]
        for task in tasks:
            _wait_state(store, task.id, TaskState.SUCCEEDED)
    finally:
        runner.stop(timeout=5.0)
    assert runner.alive() == 0
    assert store.count_tasks() == {"succeeded": 3}


def test_recover_requeues_a_dead_workers_task_then_gives_up(
    settings: Settings,
    store: SqlJobStore,
    storage: LocalStorage,
    song: bytes,
    add_audio: Callable[..., Any],
    add_task: Callable[..., Any],
) -> None:
    runner = LocalRunner(
        settings.model_copy(update={"job_attempts": 2}), store, storage, count=0, threads=True
    )
    task = add_task(add_audio(song))
    for attempt, expected in ((1, TaskState.QUEUED), (2, TaskState.FAILED)):
        claimed = store.claim_task("elsewhere:1", lease_s=-1.0)  # a lease already out
        assert claimed is not None and claimed.attempts == attempt
        runner.recover()
        after = store.get_task(task.id, None)
        assert after is not None and after.state is expected
    assert after.error_code == "worker_died"


def test_dead_local_workers_are_this_hosts_gone_processes() -> None:
    alive = worker_identity()
    host = alive.split(":")[0]
    assert dead_local_workers([alive, f"{host}:999999999", "other-host:1"]) == [f"{host}:999999999"]
