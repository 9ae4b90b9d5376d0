"""Webhook delivery: signed per Standard Webhooks, retried with backoff, kept in the job store.

The body of a delivery is rendered once (by the dialect that created the task) and stored with the
delivery, so every retry sends the same bytes under the same `webhook-id`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
from standardwebhooks.webhooks import Webhook

from stemscribe.jobs.models import Principal, TaskRecord, WebhookDelivery
from stemscribe.jobs.netguard import BlockedAddressError, check_url, guarded_client
from stemscribe.jobs.store import SqlJobStore, retry_while_down
from stemscribe.settings import Settings

logger = logging.getLogger(__name__)


class CallbackRenderer(Protocol):
    """Shapes a finished task into its dialect's callback body and extra headers."""

    def payload(self, task: TaskRecord) -> dict[str, Any]: ...

    def headers(self, task: TaskRecord, timestamp: int, principal: Principal) -> dict[str, str]: ...


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> dict[str, str]:
    """The three Standard Webhooks headers for `body`."""
    when = datetime.fromtimestamp(timestamp, tz=UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": Webhook(secret).sign(msg_id, when, body),
    }


class WebhookSender:
    """Sends due deliveries from the store; run `run(stop)` in a thread, or call `send_due()`."""

    def __init__(
        self,
        settings: Settings,
        store: SqlJobStore,
        renderer: CallbackRenderer,
        *,
        transport: httpx.BaseTransport | None = None,
        poll_s: float = 0.5,
    ) -> None:
        self.settings = settings
        self.store = store
        self.renderer = renderer
        self.poll_s = poll_s
        self._client = guarded_client(
            allow_private=settings.allow_private_urls, timeout=settings.webhook_timeout_s, transport=transport
        )
        self.wake = threading.Event()

    def close(self) -> None:
        self._client.close()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                sent = self.send_due()
            except Exception:  # noqa: BLE001 - keep delivering after a store error
                logger.exception("webhook sender")
                sent = 0
            if not sent:
                self.wake.wait(self.poll_s)
                self.wake.clear()

    def send_due(self) -> int:
        deliveries = self.store.due_deliveries(limit=20)
        for d in deliveries:
            self.deliver(d)
        return len(deliveries)

    def backoff(self, attempts_done: int) -> float:
        return self.settings.webhook_backoff_s * (2 ** max(0, attempts_done - 1))

    def deliver(self, d: WebhookDelivery) -> WebhookDelivery | None:
        task = self.store.get_task(d.task_id, None)
        principal = self.store.get_principal(d.owner_id)
        if task is None or principal is None:
            return self.store.record_delivery(
                d.id, payload=d.payload or "", status=None, error="task deleted", delivered=False, retry_in=-1
            )
        body = (
            d.payload
            if d.payload is not None
            else json.dumps(self.renderer.payload(task), separators=(",", ":"))
        )
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            **sign(principal.webhook_secret, d.id, timestamp, body),
        }
        headers.update(self.renderer.headers(task, timestamp, principal))
        status: int | None = None
        try:
            check_url(d.url)
            response = self._client.post(d.url, content=body.encode(), headers=headers)
            status = response.status_code
            ok = 200 <= status < 300
            error = None if ok else f"HTTP {status}"
        except BlockedAddressError as exc:
            logger.warning("webhook %s refused: %s", d.id, exc)
            return self.store.record_delivery(
                d.id, payload=body, status=None, error=str(exc), delivered=False, retry_in=-1
            )
        except httpx.HTTPError as exc:
            ok, error = False, f"{type(exc).__name__}: {exc}"
        # The POST went out: a database restarting now must not make it go out twice, so its record
        # waits for the database (as long as the delivery is held for this attempt).
        return retry_while_down(
            lambda: self.store.record_delivery(
                d.id,
                payload=body,
                status=status,
                error=error,
                delivered=ok,
                retry_in=self.backoff(d.attempts + 1),
            ),
            within_s=self.settings.webhook_timeout_s + 30.0,
        )
