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
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import InterfaceError, OperationalError

from stemscribe.jobs.broker import DELIVER, RUN_TASK, make_celery, queue_name
from stemscribe.jobs.models import DeliveryState
from stemscribe.jobs.runner import dead_local_workers
from stemscribe.jobs.storage import storage_for
from stemscribe.jobs.store import Claim, SqlJobStore
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
    from celery import Celery

logger = logging.getLogger(__name__)

DATABASE_DOWN = (OperationalError, InterfaceError)
"""Errors of a database that is restarting or unreachable: the message is sent again, not dropped
(a task left running by such an error is queued again once its lease runs out)."""
DATABASE_RETRY_S = 3.0


class WorkerProcess:
    """What one worker process holds: the store, the storage, a `Worker` (models loaded once), the
    callback sender, and the Celery app it sends follow-up messages with."""

    def __init__(self, settings: Settings, factory: TranscriberFactory, app: Celery) -> None:
        self.settings = settings
        self.app = app
        self.store = SqlJobStore(
            settings.resolved_database_url,
            webhook_attempts=settings.webhook_attempts,
            busy_timeout_s=settings.db_busy_timeout_s,
        )
        self.storage = storage_for(settings)
        self.worker = Worker(
            settings, self.store, self.storage, factory, worker_id=worker_identity("/celery")
        )
        self.sender = WebhookSender(
            settings, self.store, DialectRenderer(ServiceContext(settings, self.store, self.storage))
        )

    def run(self, task_id: str) -> float | None:
        """Run the task if it is this worker's to run; the seconds to wait before trying again when
        another live worker holds it, else None."""
        lease = self.settings.worker_lease_s
        claim, task = self.store.claim_task_by_id(
            task_id,
            self.worker.worker_id,
            lease,
            max_attempts=self.settings.job_attempts,
            dead_workers=dead_local_workers,
        )
        if claim is Claim.BUSY and task is not None:
            return max(0.5, (task.lease_until or time.time()) - time.time() + 0.5)
        if claim is Claim.CLAIMED and task is not None:
            if task.attempts > 1:
                logger.warning("task %s: attempt %d (its previous worker stopped)", task_id, task.attempts)
            self.worker.run_task(task)
        elif claim is Claim.GAVE_UP:
            logger.error("task %s failed: its workers stopped %d times", task_id, self.settings.job_attempts)
        self.send_new_deliveries(task_id)
        return None

    def send_new_deliveries(self, task_id: str) -> None:
        """Queue the first attempt of the task's callbacks not yet tried (the sweeper of the API nodes
        queues them again should this message be lost)."""
        for d in self.store.deliveries_for_task(task_id):
            if d.state is DeliveryState.PENDING and d.attempts == 0:
                self.send_delivery(d.id)

    def send_delivery(self, delivery_id: str, countdown: float = 0.0) -> None:
        self.app.send_task(
            DELIVER,
            args=[delivery_id],
            queue=queue_name(self.settings, "callbacks"),
            countdown=countdown if countdown > 0 else None,
        )

    def deliver(self, delivery_id: str) -> None:
        d = self.store.claim_delivery(delivery_id, hold_s=self.settings.webhook_timeout_s + 30.0)
        if d is None:  # delivered, failed for good, or another sender has it: nothing to do
            return
        after = self.sender.deliver(d)
        if after is not None and after.state is DeliveryState.PENDING:
            self.send_delivery(after.id, after.next_attempt_at - time.time())


def create_worker_app(
    settings: Settings, factory: TranscriberFactory = default_transcriber_factory
) -> Celery:
    """The Celery app of `stemscribe worker`, with its two tasks; each worker process builds its
    `WorkerProcess` (and loads the models) once, when it starts."""
    from celery.signals import worker_process_init

    app = make_celery(settings)
    held: dict[int, WorkerProcess] = {}

    def process() -> WorkerProcess:
        pid = os.getpid()
        if pid not in held:  # a forked child never uses its parent's connections
            held.clear()
            held[pid] = WorkerProcess(settings, factory, app)
        return held[pid]

    @app.task(name=RUN_TASK, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
    def run_task(self: Any, task_id: str) -> None:
        try:
            wait = process().run(task_id)
        except DATABASE_DOWN as exc:  # the message goes back to the queue; the store decides again
            logger.warning("task %s: the database is unavailable (%s); retrying", task_id, exc)
            raise self.retry(countdown=DATABASE_RETRY_S, max_retries=None) from None
        if wait is not None:
            raise self.retry(countdown=wait, max_retries=None)

    @app.task(name=DELIVER, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
    def deliver(self: Any, delivery_id: str) -> None:
        try:
            process().deliver(delivery_id)
        except DATABASE_DOWN as exc:
            logger.warning("delivery %s: the database is unavailable (%s); retrying", delivery_id, exc)
            raise self.retry(countdown=DATABASE_RETRY_S, max_retries=None) from None

    def start_process(**_kwargs: Any) -> None:
        exit_with_parent(os.getppid())  # a child whose worker is killed -9 dies with it
        _ = process().worker.transcriber

    worker_process_init.connect(start_process, weak=False)
    return app


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
    app = create_worker_app(settings, factory)
    names = [queue_name(settings, q) for q in (queues or ["transcribe", "separate", "callbacks"])]
    app.worker_main(
        [
            "worker",
            f"--concurrency={max(1, concurrency)}",
            f"--queues={','.join(names)}",
            f"--pool={pool}",
            f"--loglevel={log_level.upper()}",
            f"--hostname=stemscribe-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
        ]
    )
