"""What a queue message may do to a task or a callback: the store decides (scale-out's guarantees)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from stemscribe.jobs.models import DeliveryState, TaskState
from stemscribe.jobs.store import Claim, SqlJobStore
from stemscribe.jobs.worker import stem_audio_id


def test_a_message_claims_a_queued_task_once(
    store: SqlJobStore, add_audio: Any, add_task: Any, song: bytes
) -> None:
    task = add_task(add_audio(song))
    claim, t = store.claim_task_by_id(task.id, "h:1", 30.0, max_attempts=3)
    assert claim is Claim.CLAIMED and t is not None and t.attempts == 1 and t.worker_id == "h:1"
    again, _ = store.claim_task_by_id(task.id, "h:2", 30.0, max_attempts=3)
    assert again is Claim.BUSY  # a live worker holds it: a redelivered message waits
    store.finish_task(task.id, "h:1", output={"note_count": 1})
    done, _ = store.claim_task_by_id(task.id, "h:2", 30.0, max_attempts=3)
    assert done is Claim.FINISHED
    assert store.get_task(task.id, None).attempts == 1  # type: ignore[union-attr]
    assert store.claim_task_by_id("no-such-task", "h:2", 30.0, max_attempts=3)[0] is Claim.MISSING
    assert store.claim_task_by_id("\x00" * 50, "h:2", 30.0, max_attempts=3)[0] is Claim.MISSING


def test_a_dead_or_silent_worker_loses_its_task(
    store: SqlJobStore, add_audio: Any, add_task: Any, song: bytes
) -> None:
    task = add_task(add_audio(song))
    store.claim_task_by_id(task.id, "h:1", 30.0, max_attempts=3)
    dead: Callable[[list[str]], list[str]] = lambda ids: [i for i in ids if i == "h:1"]  # noqa: E731
    claim, t = store.claim_task_by_id(task.id, "h:2", 30.0, max_attempts=3, dead_workers=dead)
    assert claim is Claim.CLAIMED and t is not None and t.attempts == 2 and t.worker_id == "h:2"
    store.extend_lease(task.id, "h:2", -1.0)  # its lease ran out (a worker on another host went quiet)
    claim, t = store.claim_task_by_id(task.id, "h:3", 30.0, max_attempts=3)
    assert claim is Claim.CLAIMED and t is not None and t.attempts == 3
    assert store.finish_task(task.id, "h:2", output={}) is None  # the old holder cannot finish it


def test_out_of_attempts_fails_with_its_callback(
    store: SqlJobStore, add_audio: Any, add_task: Any, song: bytes
) -> None:
    task = add_task(add_audio(song), callback_url="https://example.com/hook")
    store.claim_task_by_id(task.id, "h:1", -1.0, max_attempts=2)
    store.claim_task_by_id(task.id, "h:2", -1.0, max_attempts=2)
    claim, t = store.claim_task_by_id(task.id, "h:3", 30.0, max_attempts=2)
    assert claim is Claim.GAVE_UP and t is not None
    failed = store.get_task(task.id, None)
    assert failed is not None and failed.state is TaskState.FAILED and failed.error_code == "worker_died"
    assert "2 times" in (failed.error_message or "")
    (delivery,) = store.deliveries_for_task(task.id)
    assert delivery.state is DeliveryState.PENDING


def test_a_delivery_is_taken_by_one_sender_at_a_time(
    store: SqlJobStore, add_audio: Any, add_task: Any, song: bytes
) -> None:
    task = add_task(add_audio(song), callback_url="https://example.com/hook")
    store.claim_task_by_id(task.id, "h:1", 30.0, max_attempts=3)
    store.finish_task(task.id, "h:1", output={})
    (d,) = store.deliveries_for_task(task.id)
    first = store.claim_delivery(d.id, hold_s=60.0)
    assert first is not None and first.next_attempt_at > time.time() + 50
    assert store.claim_delivery(d.id, hold_s=60.0) is None  # a duplicate message finds it held
    assert store.overdue_deliveries(0.0) == []
    store.record_delivery(d.id, payload="{}", status=500, error="HTTP 500", delivered=False, retry_in=0.0)
    again = store.claim_delivery(d.id, hold_s=60.0)
    assert again is not None and again.id == d.id and again.attempts == 1  # same id: same webhook-id
    store.record_delivery(d.id, payload="{}", status=200, error=None, delivered=True, retry_in=1.0)
    assert store.claim_delivery(d.id, hold_s=60.0) is None


def test_stem_ids_are_the_same_on_every_run() -> None:
    assert stem_audio_id("t1", "drums") == stem_audio_id("t1", "drums")
    assert len({stem_audio_id("t1", "drums"), stem_audio_id("t1", "bass"), stem_audio_id("t2", "drums")}) == 3


def test_a_worker_takes_up_its_own_interrupted_task_without_counting_a_start(
    store: SqlJobStore, add_audio: Any, add_task: Any, song: bytes
) -> None:
    task = add_task(add_audio(song))
    store.claim_task_by_id(task.id, "h:1/c.a", 30.0, max_attempts=1)
    claim, _ = store.claim_task_by_id(task.id, "h:1/c.a", 30.0, max_attempts=1)
    assert claim is Claim.BUSY  # still running here: the message waits
    store.extend_lease(task.id, "h:1/c.a", -1.0)
    claim, _ = store.claim_task_by_id(task.id, "h:1/c.a", 30.0, max_attempts=1)
    assert claim is Claim.BUSY  # a lease that ran out does not say this worker stopped running it
    idle_here: Callable[[list[str]], list[str]] = lambda ids: ids  # noqa: E731 - the database went away
    claim, t = store.claim_task_by_id(task.id, "h:1/c.a", 30.0, max_attempts=1, dead_workers=idle_here)
    assert claim is Claim.CLAIMED and t is not None and t.attempts == 1  # no worker died: no start counted
    assert store.finish_task(task.id, "h:1/c.a", output={}) is not None


def test_the_sweep_sends_before_it_commits(
    store: SqlJobStore, add_audio: Any, add_task: Any, song: bytes
) -> None:
    """A broker that is down leaves a stale task as it was, so the next sweep finds it again."""
    task = add_task(add_audio(song))
    store.claim_task_by_id(task.id, "h:1", -1.0, max_attempts=3)

    def broker_down(_t: Any) -> None:
        raise ConnectionError("broker down")

    with pytest.raises(ConnectionError):
        store.requeue_stale_ids(max_attempts=3, send=broker_down)
    still = store.get_task(task.id, None)
    assert still is not None and still.state is TaskState.RUNNING and still.worker_id == "h:1"
    sent: list[str] = []
    requeued, _ = store.requeue_stale_ids(max_attempts=3, send=lambda t: sent.append(t.id))
    assert sent == [task.id] == [t.id for t in requeued]
    assert store.get_task(task.id, None).state is TaskState.QUEUED  # type: ignore[union-attr]


def test_writes_wait_for_a_database_that_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import OperationalError

    from stemscribe.jobs import store as store_module

    monkeypatch.setattr(store_module.time, "sleep", lambda _s: None)
    failures = [OperationalError("UPDATE", {}, Exception("server closed the connection"))] * 3
    calls: list[int] = []

    def write() -> str:
        calls.append(1)
        if failures:
            raise failures.pop()
        return "recorded"

    assert store_module.retry_while_down(write, within_s=60.0) == "recorded" and len(calls) == 4
    failures.extend([OperationalError("UPDATE", {}, Exception("down"))] * 100)
    with pytest.raises(OperationalError):
        store_module.retry_while_down(write, within_s=0.0)
    with pytest.raises(ValueError):  # a refused statement is not waited for
        store_module.retry_while_down(lambda: int("x"), within_s=60.0)
