"""The webhook sender on its own: signed bodies, retries with backoff, refusals, over httpx.MockTransport."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from stemscribe.jobs.models import DeliveryState, Principal, TaskRecord
from stemscribe.jobs.store import SqlJobStore
from stemscribe.jobs.webhooks import WebhookSender
from stemscribe.settings import Settings


class Renderer:
    def payload(self, task: TaskRecord) -> dict[str, Any]:
        return {"task": task.id, "state": task.state}

    def headers(self, task: TaskRecord, timestamp: int, principal: Principal) -> dict[str, str]:
        return {"x-dialect": task.dialect}


@pytest.fixture
def finished(
    store: SqlJobStore, song: bytes, add_audio: Callable[..., Any], add_task: Callable[..., Any]
) -> Callable[[str], TaskRecord]:
    """A task that finished with a callback to `url` (its delivery queued)."""

    def make(url: str) -> TaskRecord:
        task = add_task(add_audio(song), callback_url=url)
        assert store.claim_task("w:1", 30.0) is not None
        done = store.finish_task(task.id, "w:1", output={"ok": True})
        assert done is not None
        return done

    return make


def _sender(
    settings: Settings, store: SqlJobStore, handler: Callable[[httpx.Request], httpx.Response]
) -> WebhookSender:
    settings = settings.model_copy(update={"webhook_backoff_s": 0.0})
    return WebhookSender(settings, store, Renderer(), transport=httpx.MockTransport(handler))


def test_a_delivery_is_signed_and_sent_once(
    settings: Settings, store: SqlJobStore, principal: Principal, finished: Callable[[str], TaskRecord]
) -> None:
    seen: list[httpx.Request] = []
    sender = _sender(settings, store, lambda r: seen.append(r) or httpx.Response(200))
    task = finished("https://example.test/hook")
    assert sender.send_due() == 1
    assert sender.send_due() == 0
    (request,) = seen
    body = request.content.decode()
    assert json.loads(body) == {"task": task.id, "state": "succeeded"}
    assert request.headers["x-dialect"] == "native"
    Webhook(principal.webhook_secret).verify(body, dict(request.headers))  # raises on a bad signature
    (delivery,) = store.deliveries_for_task(task.id)
    assert (
        delivery.state is DeliveryState.DELIVERED and delivery.attempts == 1 and delivery.last_status == 200
    )


def test_failures_are_retried_with_the_same_body_then_given_up(
    settings: Settings, store: SqlJobStore, principal: Principal, finished: Callable[[str], TaskRecord]
) -> None:
    seen: list[httpx.Request] = []
    sender = _sender(settings, store, lambda r: seen.append(r) or httpx.Response(503))
    task = finished("https://example.test/hook")
    for _ in range(store.webhook_attempts + 2):
        sender.send_due()
    assert len(seen) == store.webhook_attempts
    assert len({r.content for r in seen}) == 1 and len({r.headers["webhook-id"] for r in seen}) == 1
    (delivery,) = store.deliveries_for_task(task.id)
    assert delivery.state is DeliveryState.FAILED and delivery.last_error == "HTTP 503"


def test_backoff_doubles_per_attempt(settings: Settings, store: SqlJobStore) -> None:
    sender = WebhookSender(settings.model_copy(update={"webhook_backoff_s": 2.0}), store, Renderer())
    assert [sender.backoff(n) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]


def test_a_deleted_task_drops_its_delivery(
    settings: Settings, store: SqlJobStore, principal: Principal, finished: Callable[[str], TaskRecord]
) -> None:
    seen: list[httpx.Request] = []
    sender = _sender(settings, store, lambda r: seen.append(r) or httpx.Response(200))
    task = finished("https://example.test/hook")
    (delivery,) = store.deliveries_for_task(task.id)
    store.delete_task(task.id, "local")
    assert sender.deliver(delivery) is None  # its row went with the task
    assert seen == []
