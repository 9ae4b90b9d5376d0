"""Scale-out through Celery: the app's configuration, its queues, and `CeleryRunner` for API nodes.

The task bodies live in `stemscribe.cluster` (they need the service's callback shapes); API nodes
only send messages by task name. A message carries nothing but an id: the state of every task and
callback is in the job store (PostgreSQL), never in Celery's result backend, so a message delivered
twice, late, or to a worker that is killed mid-task changes nothing the store does not allow.

Celery's defaults would lose work (celery #7924: a worker killed mid-task has already acked its
message), so: `task_acks_late` (ack after the task returns), `task_reject_on_worker_lost` (a child
killed mid-task sends its message back), prefetch 1 (a worker holds no message it is not running),
durable queues and persistent messages with publisher confirms on RabbitMQ.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from stemscribe.jobs.models import DeliveryState, TaskKind, TaskRecord
from stemscribe.jobs.store import SqlJobStore
from stemscribe.settings import Settings

if TYPE_CHECKING:
    from celery import Celery

logger = logging.getLogger(__name__)

RUN_TASK = "stemscribe.run_task"
"""Run one job (transcription or separation): `run_task(task_id)`."""
DELIVER = "stemscribe.deliver"
"""One attempt at one callback: `deliver(delivery_id)`; it schedules its own next attempt."""

QUEUE_KINDS = ("transcribe", "separate", "callbacks")


def queue_name(settings: Settings, kind: str) -> str:
    """`<queue_prefix>.<kind>` for kind in transcribe, separate, callbacks."""
    if kind not in QUEUE_KINDS:
        raise ValueError(f"unknown queue {kind!r}; the queues are {', '.join(QUEUE_KINDS)}")
    return f"{settings.queue_prefix}.{kind}"


def task_queue(settings: Settings, kind: TaskKind) -> str:
    return queue_name(settings, "separate" if kind is TaskKind.SEPARATE else "transcribe")


def worker_hostname(settings: Settings, name: str) -> str:
    """A Celery worker's node name, `<queue prefix>-<name>@<host>`: the API nodes count the workers
    of their deployment by it."""
    return f"{settings.queue_prefix}-{name}@{socket.gethostname()}"


def make_celery(settings: Settings) -> Celery:
    """The Celery app on `settings.broker_url`, configured not to lose work (see the module doc)."""
    from celery import Celery
    from kombu import Exchange, Queue

    if not settings.broker_url:
        raise ValueError("STEMSCRIBE_BROKER_URL is not set")
    app = Celery("stemscribe", broker=settings.broker_url, set_as_current=False)
    queues = [
        Queue(name, Exchange(name, type="direct", durable=True), routing_key=name, durable=True)
        for name in (queue_name(settings, k) for k in QUEUE_KINDS)
    ]
    transport: dict[str, Any] = {}
    if settings.broker_url.startswith(("amqp", "pyamqp")):
        transport["confirm_publish"] = True
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_queues=queues,
        task_default_queue=queue_name(settings, "transcribe"),
        task_create_missing_queues=False,
        task_default_delivery_mode="persistent",
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        task_publish_retry=True,
        task_publish_retry_policy={
            "max_retries": 20,
            "interval_start": 0.2,
            "interval_step": 0.5,
            "interval_max": 3.0,
        },
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_transport_options=transport,
        # A worker that loses the broker finishes its running task (the store records the outcome;
        # the redelivered message then finds the task finished) instead of throwing the work away.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    return app


class CeleryRunner:
    """The `Runner` of an API node in scale-out mode: sends each new task to the broker, and sweeps
    for work whose message was lost (tasks of workers whose lease ran out, callbacks overdue)."""

    def __init__(self, settings: Settings, store: SqlJobStore, *, sweep_s: float | None = None) -> None:
        self.settings = settings
        self.store = store
        self.app = make_celery(settings)
        self.sweep_s = sweep_s if sweep_s is not None else max(1.0, min(settings.worker_lease_s / 2, 30.0))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._alive = (0.0, 0)
        self._lock = threading.Lock()

    def submit(self, task: TaskRecord) -> None:
        """Send the message that runs `task` (publisher-confirmed on RabbitMQ; retried while the
        broker reconnects, then the broker's error)."""
        self.app.send_task(RUN_TASK, args=[task.id], queue=task_queue(self.settings, task.kind))

    def submit_delivery(self, delivery_id: str, countdown: float = 0.0) -> None:
        self.app.send_task(
            DELIVER,
            args=[delivery_id],
            queue=queue_name(self.settings, "callbacks"),
            countdown=max(0.0, countdown) or None,
        )

    def start(self) -> None:
        self._thread = threading.Thread(target=self._sweep_loop, name="celery-sweeper", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.app.close()  # its broker connections

    def alive(self) -> int:
        """This deployment's workers that answered the last ping (refreshed by the sweeper)."""
        return self._alive[1]

    def sweep(self) -> tuple[int, int]:
        """Send again what a dead worker or a lost message left: (tasks, callbacks) sent.

        A task is queued again in the same transaction that sends its message (a broker that is down
        leaves it to the next sweep); the failure callbacks of tasks out of attempts are sent at once."""
        requeued, failed = self.store.requeue_stale_ids(
            max_attempts=self.settings.job_attempts, send=self.submit
        )
        for t in failed:
            for d in self.store.deliveries_for_task(t.id):
                if d.state is DeliveryState.PENDING and d.attempts == 0:
                    self.submit_delivery(d.id)
        overdue = self.store.overdue_deliveries(self.settings.webhook_timeout_s + 30.0)
        for d in overdue:
            self.submit_delivery(d.id)
        if requeued or failed:
            logger.warning(
                "requeued %d task(s) of lost workers; %d out of attempts failed",
                *map(len, (requeued, failed)),
            )
        return len(requeued), len(overdue)

    def _ping(self) -> None:
        """Ping the workers; those of this deployment are named `<queue prefix>-<pid>@<host>`
        (`worker_hostname`), so the workers of other deployments on the same broker are not counted."""
        replies = self.app.control.ping(timeout=1.0) or []
        ours = [
            name for reply in replies for name in reply if name.startswith(f"{self.settings.queue_prefix}-")
        ]
        self._alive = (time.monotonic(), len(ours))

    def _sweep_loop(self) -> None:
        while True:
            try:
                self._ping()
                self.sweep()
            except Exception:  # noqa: BLE001 - the sweeper keeps watching after a broker or store error
                logger.warning("celery sweeper", exc_info=True)
            if self._stop.wait(self.sweep_s):
                return
