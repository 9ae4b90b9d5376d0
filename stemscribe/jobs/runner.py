"""Runners start and watch the workers. `LocalRunner` runs them as child processes (or threads).

The interface is small (`start`, `stop`, `alive`, `submit`); `jobs.broker.CeleryRunner` is the
scale-out one, sending each task to Celery workers on other machines.
The supervisor also queues again any task whose worker died (its process is gone, or its lease ran
out), including tasks left running by a previous server that crashed.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import threading
from typing import Any, Protocol

from stemscribe.jobs.models import TaskRecord
from stemscribe.jobs.storage import ArtifactStorage
from stemscribe.jobs.store import SqlJobStore
from stemscribe.jobs.worker import (
    TranscriberFactory,
    Worker,
    default_transcriber_factory,
    process_main,
)
from stemscribe.settings import Settings

logger = logging.getLogger(__name__)


class Runner(Protocol):
    """Starts workers that drain the task queue."""

    def start(self) -> None: ...

    def stop(self, timeout: float = 10.0) -> None: ...

    def alive(self) -> int:
        """How many workers are running now."""
        ...

    def submit(self, task: TaskRecord) -> None:
        """Tell the workers of a task just added to the store (raises when it cannot be sent)."""
        ...


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def dead_local_workers(worker_ids: list[str]) -> list[str]:
    """Worker ids of this host whose process no longer exists."""
    host = socket.gethostname()
    dead = []
    for wid in worker_ids:
        parts = wid.split(":")
        if len(parts) >= 2 and parts[0] == host:
            pid = parts[1].split("/")[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                dead.append(wid)
    return dead


class LocalRunner:
    """`count` workers as spawned processes (default) or as threads of this process."""

    def __init__(
        self,
        settings: Settings,
        store: SqlJobStore,
        storage: ArtifactStorage,
        *,
        transcriber_factory: TranscriberFactory = default_transcriber_factory,
        count: int | None = None,
        threads: bool | None = None,
        supervise_s: float = 2.0,
    ) -> None:
        self.settings = settings
        self.store = store
        self.storage = storage
        self.factory = transcriber_factory
        self.count = settings.workers if count is None else count
        self.threads = settings.worker_threads if threads is None else threads
        self.supervise_s = supervise_s
        self._ctx = multiprocessing.get_context("spawn")
        self._stop_threads = threading.Event()
        self._stop_procs: Any = None
        self._procs: list[Any] = []
        self._threads: list[threading.Thread] = []
        self._supervisor: threading.Thread | None = None

    def start(self) -> None:
        self.recover()
        if self.threads:
            for n in range(self.count):
                self._threads.append(self._start_thread(n))
        else:
            self._stop_procs = self._ctx.Event()
            for _ in range(self.count):
                self._procs.append(self._start_process())
        self._supervisor = threading.Thread(target=self._supervise, name="runner-supervisor", daemon=True)
        self._supervisor.start()

    def _start_thread(self, n: int) -> threading.Thread:
        worker = Worker(
            self.settings,
            self.store,
            self.storage,
            self.factory,
            worker_id=f"{socket.gethostname()}:{os.getpid()}/t{n}",
        )
        t = threading.Thread(target=worker.run, args=(self._stop_threads,), name=f"worker-{n}", daemon=True)
        t.start()
        return t

    def _start_process(self) -> Any:
        p = self._ctx.Process(
            target=process_main,
            args=(self.settings.model_dump_json(), self.factory, self._stop_procs, os.getpid()),
            name="stemscribe-worker",
            daemon=True,
        )
        p.start()
        return p

    def recover(self) -> tuple[int, int]:
        """Queue again the tasks of dead local workers and of expired leases; (requeued, failed)."""
        dead = dead_local_workers(self.store.running_workers())
        requeued, failed = self.store.requeue_stale(
            max_attempts=self.settings.job_attempts, dead_workers=dead
        )
        if requeued or failed:
            logger.warning(
                "requeued %d task(s) of stopped workers; %d out of attempts failed", requeued, failed
            )
        return requeued, failed

    def _supervise(self) -> None:
        stop = self._stop_threads
        while not stop.wait(self.supervise_s):
            try:
                for i, p in enumerate(self._procs):
                    if not p.is_alive() and not self._stop_procs.is_set():
                        logger.warning(
                            "worker process %s exited with %s; starting another", p.pid, p.exitcode
                        )
                        self._procs[i] = self._start_process()
                self.recover()
            except Exception:  # noqa: BLE001 - the supervisor keeps watching after a store error
                logger.exception("runner supervisor")

    def alive(self) -> int:
        return sum(p.is_alive() for p in self._procs) + sum(t.is_alive() for t in self._threads)

    def submit(self, task: TaskRecord) -> None:
        """Nothing to send: the workers poll the store."""

    def stop(self, timeout: float = 10.0) -> None:
        self._stop_threads.set()
        if self._stop_procs is not None:
            self._stop_procs.set()
        for t in self._threads:
            t.join(timeout)
        for p in self._procs:
            p.join(timeout)
            if p.is_alive():
                p.terminate()
                p.join(2)
        if self._supervisor is not None:
            self._supervisor.join(timeout)
        # Drop the processes and their stop event, so their semaphores are released now, not at exit.
        self._procs, self._stop_procs = [], None
