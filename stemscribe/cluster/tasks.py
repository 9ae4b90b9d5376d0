"""The Celery tasks of `stemscribe worker`: `run_task` (a transcription or a separation) and `deliver`
(one attempt at one callback).

Every decision is the job store's: a message only names a task or a delivery. `run_task` claims its
task in the store (`claim_task_by_id`): a queued task, or a running one whose worker is gone (dead
process on this host, or lease run out), each start counted, at most `STEMSCRIBE_JOB_ATTEMPTS`;
a task held by a live worker is retried once its lease may have run out; a finished one is left
alone. Results are written under fixed keys (`tasks/<id>/...`, stems by `stem_audio_id`), so a run
that is repeated overwrites the first. `deliver` takes its delivery for one attempt
(`claim_delivery`), sends it signed with the delivery's id as `webhook-id`, and schedules the next
attempt with the README's backoff.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any

from stemscribe.jobs.broker import DELIVER, RUN_TASK, make_celery, queue_name, worker_hostname
from stemscribe.jobs.models import DeliveryState
from stemscribe.jobs.runner import dead_local_workers
from stemscribe.jobs.storage import storage_for
from stemscribe.jobs.store import DATABASE_DOWN, Claim, SqlJobStore
from stemscribe.jobs.webhooks import WebhookSender
from stemscribe.jobs.worker import (
    TranscriberFactory,
    Worker,
    default_transcriber_factory,
    exit_with_parent,
    worker_identity,
)
from stemscribe.service.context import ServiceContext
from stemscribe.service.shapes import DialectRenderer
from stemscribe.settings import Settings

if TYPE_CHECKING:
    import httpx
    from celery import Celery

logger = logging.getLogger(__name__)

DATABASE_RETRY_S = 3.0
"""While the database is down (`DATABASE_DOWN`), a message is sent again after this long, not
dropped; a task the outage interrupted is taken up again by the same worker when it comes back."""

TASK_OPTIONS: dict[str, Any] = {
    "bind": True,
    "shared": False,
    "acks_late": True,  # a worker killed mid-task leaves its message unacked: it runs again elsewhere
    "reject_on_worker_lost": True,
    "ignore_result": True,  # state lives in the job store, not in Celery's result backend
}
"""The options of both tasks (a run and a callback delivery)."""


class WorkerProcess:
    """What one worker process holds: the store, the storage, a `Worker` (models loaded once), the
    callback sender, and the Celery app it sends follow-up messages with."""

    def __init__(
        self,
        settings: Settings,
        factory: TranscriberFactory,
        app: Celery,
        *,
        webhook_transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.app = app
        self.store = SqlJobStore(
            settings.resolved_database_url,
            webhook_attempts=settings.webhook_attempts,
            busy_timeout_s=settings.db_busy_timeout_s,
        )
        self.storage = storage_for(settings)
        # host:pid/celery.<random>: one id per worker process, even for several Celery workers
        # embedded in one process
        self.worker = Worker(
            settings,
            self.store,
            self.storage,
            factory,
            worker_id=worker_identity(f"/celery.{secrets.token_hex(3)}"),
        )
        self.sender = WebhookSender(
            settings,
            self.store,
            DialectRenderer(ServiceContext(settings, self.store, self.storage)),
            transport=webhook_transport,
        )
        self._running: set[str] = set()
        self._lock = threading.Lock()

    def _gone(self, task_id: str, holders: list[str]) -> list[str]:
        """Which holders of `task_id` no longer run it: dead processes of this host, and this worker
        itself when it is not running the task (an outage of the database interrupted it here)."""
        with self._lock:
            idle_here = task_id not in self._running
        own = [h for h in holders if h == self.worker.worker_id and idle_here]
        return own + dead_local_workers([h for h in holders if h not in own])

    def run(self, task_id: str) -> float | None:
        """Run the task if it is this worker's to run; the seconds to wait before trying again when
        another live worker holds it, else None."""
        lease = self.settings.worker_lease_s
        claim, task = self.store.claim_task_by_id(
            task_id,
            self.worker.worker_id,
            lease,
            max_attempts=self.settings.job_attempts,
            dead_workers=lambda holders: self._gone(task_id, holders),
        )
        if claim is Claim.BUSY and task is not None:
            return max(0.5, (task.lease_until or time.time()) - time.time() + 0.5)
        if claim is Claim.CLAIMED and task is not None:
            if task.attempts > 1:
                logger.warning("task %s: attempt %d (its previous worker stopped)", task_id, task.attempts)
            with self._lock:
                self._running.add(task_id)
            try:
                self.worker.run_task(task)
            finally:
                with self._lock:
                    self._running.discard(task_id)
        elif claim is Claim.GAVE_UP:
            logger.error("task %s failed: its workers stopped %d times", task_id, self.settings.job_attempts)
        self.send_new_deliveries(task_id)
        return None

    def send_new_deliveries(self, task_id: str) -> None:
        """Queue the first attempt of the task's callbacks not yet tried. A broker that is down
        loses nothing: the delivery stays pending in the store, where the sweeper of the API nodes
        finds it and queues it again."""
        from kombu.exceptions import OperationalError as BrokerDown

        for d in self.store.deliveries_for_task(task_id):
            if d.state is DeliveryState.PENDING and d.attempts == 0:
                try:
                    self.send_delivery(d.id)
                except BrokerDown as exc:
                    logger.warning("callback %s of task %s not queued (%s); swept later", d.id, task_id, exc)

    def send_delivery(self, delivery_id: str, countdown: float = 0.0) -> None:
        self.app.send_task(
            DELIVER,
            args=[delivery_id],
            queue=queue_name(self.settings, "callbacks"),
            countdown=countdown if countdown > 0 else None,
        )

    def close(self) -> None:
        self.sender.close()
        self.store.close()

    def deliver(self, delivery_id: str) -> None:
        d = self.store.claim_delivery(delivery_id, hold_s=self.settings.webhook_timeout_s + 30.0)
        if d is None:  # delivered, failed for good, or another sender has it: nothing to do
            return
        after = self.sender.deliver(d)
        if after is not None and after.state is DeliveryState.PENDING:
            self.send_delivery(after.id, after.next_attempt_at - time.time())


class WorkerApp:
    """The Celery app of `stemscribe worker` (`.celery`) with its two tasks, and the `WorkerProcess`
    that each worker process builds (loading the models) once. Tests pass a fake `factory` and an
    httpx transport for the callbacks, as they do to `create_app`, and may run it embedded
    (`celery.contrib.testing.worker.start_worker(app.celery)`); `close` releases its connections."""

    def __init__(
        self,
        settings: Settings,
        factory: TranscriberFactory = default_transcriber_factory,
        *,
        webhook_transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.factory = factory
        self.webhook_transport = webhook_transport
        self.celery = make_celery(settings)
        self._held: dict[int, WorkerProcess] = {}
        self._lock = threading.Lock()
        process = self.process

        @self.celery.task(name=RUN_TASK, **TASK_OPTIONS)
        def run_task(self: Any, task_id: str) -> None:
            try:
                wait = process().run(task_id)
            except DATABASE_DOWN as exc:  # the message goes back to the queue; the store decides again
                logger.warning("task %s: the database is unavailable (%s); retrying", task_id, exc)
                raise self.retry(countdown=DATABASE_RETRY_S, max_retries=None) from None
            if wait is not None:
                raise self.retry(countdown=wait, max_retries=None)

        @self.celery.task(name=DELIVER, **TASK_OPTIONS)
        def deliver(self: Any, delivery_id: str) -> None:
            try:
                process().deliver(delivery_id)
            except DATABASE_DOWN as exc:
                logger.warning("delivery %s: the database is unavailable (%s); retrying", delivery_id, exc)
                raise self.retry(countdown=DATABASE_RETRY_S, max_retries=None) from None

    def process(self) -> WorkerProcess:
        """This process's `WorkerProcess` (a forked child builds its own: it never uses its parent's
        connections)."""
        pid = os.getpid()
        with self._lock:  # the threads pool's first tasks arrive together
            if pid not in self._held:
                self._held.clear()
                self._held[pid] = WorkerProcess(
                    self.settings, self.factory, self.celery, webhook_transport=self.webhook_transport
                )
            return self._held[pid]

    def start_process(self, **_kwargs: Any) -> None:
        """Celery's `worker_process_init`: a prefork child dies with its worker (even by `kill -9`)
        and loads the models before it takes a task."""
        exit_with_parent(os.getppid())
        _ = self.process().worker.transcriber

    def close(self) -> None:
        with self._lock:
            for held in self._held.values():
                held.close()
            self._held.clear()
        self.celery.close()


def run_worker(
    settings: Settings,
    *,
    factory: TranscriberFactory = default_transcriber_factory,
    concurrency: int = 1,
    queues: list[str] | None = None,
    pool: str = "prefork",
    log_level: str = "info",
) -> None:
    """Migrate the database, then run a Celery worker in this process until it is stopped."""
    from stemscribe.jobs.migrations import upgrade_database

    settings.ensure_dirs()
    upgrade_database(settings.resolved_database_url)
    from celery.signals import worker_process_init

    app = WorkerApp(settings, factory)
    worker_process_init.connect(app.start_process, weak=False)
    names = [queue_name(settings, q) for q in (queues or ["transcribe", "separate", "callbacks"])]
    app.celery.worker_main(
        [
            "worker",
            f"--concurrency={max(1, concurrency)}",
            f"--queues={','.join(names)}",
            f"--pool={pool}",
            f"--loglevel={log_level.upper()}",
            f"--hostname={worker_hostname(settings, str(os.getpid()))}",
            "--without-gossip",
            "--without-mingle",
        ]
    )
