"""The service tests on the scale-out configuration (`pytest --scale-out tests/service`, `make
test-scale-out`): every server a test makes through `make_client` is a deployment of its own, with
the machine's PostgreSQL (a fresh schema), RabbitMQ (queues under a fresh prefix), Redis (keys under
that prefix) and moto's S3 server (a prefix in the session's bucket), and in it:

- two API nodes (two apps from `create_app`, each with its store, caches and Celery runner) behind
  one test client that alternates between them (`Nodes`: a round-robin load balancer), so a task is
  submitted on one node and polled on the other, and a signed link made by one downloads from the
  other;
- two Celery workers (`cluster.tasks.WorkerApp`, each its own consumer, solo pool) running embedded
  in threads of the test process, with the test's transcriber and callback receiver: what a test
  checks of them (calls, gates, callbacks) it checks as it does of the embedded workers.

A server started with `workers=0` is a deployment whose workers are not started (its messages wait
in RabbitMQ); `same_dir=True` starts new nodes and workers on the same deployment, as a restart.
All nodes and workers of a deployment share one `Settings` object, so a test that changes a setting
of its app (`ctx.settings`) changes it for the workers too, as embedded worker threads share it.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from stemscribe.settings import Settings
from tests.conftest import postgres_schema
from tests.servers import AMQP_URL, AWS_ENV, REDIS_URL, MotoServer, require_server

WORKERS = 2
"""Celery workers per deployment (and API nodes: two as well)."""


class ScaleOut:
    """The servers of a --scale-out session: moto's S3 server and one bucket, with the AWS variables
    pointing this process's boto3 at it; `deployment()` makes one test server's deployment."""

    workers = WORKERS

    def __init__(self, s3_url: str, bucket: str) -> None:
        self.s3_url, self.bucket = s3_url, bucket

    @classmethod
    @contextlib.contextmanager
    def open(cls, root: Path) -> Iterator[ScaleOut]:
        for module in ("celery", "boto3", "redis", "psycopg"):
            pytest.importorskip(module, reason=f"--scale-out needs {module} (the scale and dev extras)")
        server = MotoServer(root / "moto.log")
        server.start()
        with pytest.MonkeyPatch.context() as mp:
            for name, value in {**AWS_ENV, "AWS_ENDPOINT_URL": server.url}.items():
                mp.setenv(name, value)
            import boto3

            bucket = f"stemscribe-{secrets.token_hex(4)}"
            boto3.client("s3").create_bucket(Bucket=bucket)
            try:
                yield cls(server.url, bucket)
            finally:
                server.stop()

    def check(self) -> None:
        require_server("RabbitMQ", AMQP_URL, 5672)
        require_server("Redis", REDIS_URL, 6379)

    def deployment(self) -> Deployment:
        return Deployment(self)


class Deployment:
    """One deployment's share of the servers: a PostgreSQL schema, and a prefix for its queues,
    Redis keys and bucket objects; `start` runs its API nodes and workers, `close` removes it all."""

    def __init__(self, servers: ScaleOut) -> None:
        self.servers = servers
        self._schema = postgres_schema("stemscribe_so_")
        self.database_url = self._schema.__enter__()
        self.prefix = f"sso{secrets.token_hex(4)}"
        self.settings: Settings | None = None

    def configure(self, settings: Settings) -> Settings:
        """The test's settings on this deployment's servers."""
        return settings.model_copy(
            update={
                "database_url": self.database_url,
                "broker_url": AMQP_URL,
                "redis_url": REDIS_URL,
                "queue_prefix": self.prefix,
                "storage_url": f"s3://{self.servers.bucket}/{self.prefix}",
                "secret_key": settings.secret_key or "scale-out-test-secret",
            }
        )

    def start(self, settings: Settings, transcriber: Any, receiver: Any, **app_kwargs: Any) -> Nodes:
        from .conftest import start_client

        shared = self.configure(settings)
        workers = (
            EmbeddedWorkers(shared, transcriber, httpx.MockTransport(receiver)) if settings.workers else None
        )
        nodes = [start_client(shared, transcriber, receiver, **app_kwargs) for _ in range(WORKERS)]
        return Nodes(nodes, workers)

    def close(self) -> None:
        from kombu import Connection

        with Connection(AMQP_URL, connect_timeout=5) as conn:
            channel = conn.channel()
            for kind in ("transcribe", "separate", "callbacks"):
                for delete in (channel.queue_delete, channel.exchange_delete):
                    try:
                        delete(f"{self.prefix}.{kind}")
                    except Exception:  # noqa: BLE001 - never declared: the channel closed, open another
                        channel = conn.channel()
        import boto3

        s3 = boto3.client("s3")
        listed = s3.list_objects_v2(Bucket=self.servers.bucket, Prefix=self.prefix + "/")
        objects = [{"Key": o["Key"]} for o in listed.get("Contents", [])]
        if objects:
            s3.delete_objects(Bucket=self.servers.bucket, Delete={"Objects": objects, "Quiet": True})
        self._schema.__exit__(None, None, None)


class EmbeddedWorkers:
    """`WORKERS` Celery workers of one deployment, each a `WorkController` (solo pool) in a thread
    of this process, consuming its three queues; `stop` ends them (and any other embedded worker
    of the process: Celery's shutdown flag is process-wide)."""

    def __init__(self, settings: Settings, transcriber: Any, transport: httpx.BaseTransport) -> None:
        from stemscribe.cluster.tasks import WorkerApp
        from stemscribe.jobs.broker import worker_hostname

        self.apps: list[Any] = []
        self.controllers: list[Any] = []
        self.threads: list[threading.Thread] = []
        for n in range(WORKERS):
            app = WorkerApp(settings, lambda _s: transcriber, webhook_transport=transport)
            app.celery.conf.worker_hijack_root_logger = False
            app.celery.finalize()
            controller = _controller_class()(
                app=app.celery,
                hostname=worker_hostname(settings, f"embedded{n}"),
                pool="solo",
                concurrency=1,
                loglevel="WARNING",
                without_heartbeat=True,
                without_mingle=True,
                without_gossip=True,
                timer_cls=_timer_class(app.celery),
            )
            thread = threading.Thread(
                target=_run, args=(app.celery, controller), name=f"celery-{n}", daemon=True
            )
            thread.start()
            if not controller._on_started.wait(60):
                raise AssertionError(f"embedded Celery worker {n} did not start within 60 s")
            self.apps.append(app)
            self.controllers.append(controller)
            self.threads.append(thread)

    def stop(self) -> None:
        from celery.worker import state

        state.should_terminate = 0
        try:
            for thread in self.threads:
                thread.join(30)
                if thread.is_alive():
                    raise AssertionError(f"embedded Celery worker {thread.name} did not stop within 30 s")
        finally:
            state.should_terminate = None
            for app in self.apps:
                app.close()
            self.threads = []


def _run(app: Any, controller: Any) -> None:
    """A worker thread: its Celery app is this thread's current app (thread-local in Celery), which
    the solo pool runs each task with; then the worker's loop."""
    app.set_current()
    controller.start()


def _timer_class(app: Any) -> Any:
    from celery.utils.timer2 import Timer

    class OwnAppTimer(Timer):  # type: ignore[misc]
        """The worker's timer thread, under the worker's Celery app: the solo pool runs a task with
        a countdown in this thread, and Celery looks it up in the thread's current app."""

        def run(self) -> None:
            app.set_current()
            super().run()

    return OwnAppTimer


def _controller_class() -> Any:
    from celery.contrib.testing.worker import TestWorkController

    class EmbeddedWorkController(TestWorkController):  # type: ignore[misc]
        """Celery's embedded test worker, on the plain consumer loop: the asynchronous one keeps
        its event hub in a process-wide global, which two workers in one process would share."""

        def should_use_eventloop(self) -> bool:
            return False

    return EmbeddedWorkController


class Nodes:
    """The API nodes of a deployment behind one test client: each request goes to the next node in
    turn (round robin); everything else (`app`, `__exit__`'s siblings) is the first node's, so
    `client.app.state.ctx` is node A's context (its store is the deployment's database)."""

    def __init__(self, nodes: list[TestClient], workers: EmbeddedWorkers | None) -> None:
        self.nodes = nodes
        self.workers = workers
        self._turn = itertools.cycle(nodes)
        self._lock = threading.Lock()
        self._closed = False

    def _next(self) -> TestClient:
        with self._lock:
            return next(self._turn)

    def request(self, method: str, url: Any, **kwargs: Any) -> httpx.Response:
        return self._next().request(method, url, **kwargs)

    def get(self, url: Any, **kwargs: Any) -> httpx.Response:
        return self._next().get(url, **kwargs)

    def post(self, url: Any, **kwargs: Any) -> httpx.Response:
        return self._next().post(url, **kwargs)

    def put(self, url: Any, **kwargs: Any) -> httpx.Response:
        return self._next().put(url, **kwargs)

    def patch(self, url: Any, **kwargs: Any) -> httpx.Response:
        return self._next().patch(url, **kwargs)

    def delete(self, url: Any, **kwargs: Any) -> httpx.Response:
        return self._next().delete(url, **kwargs)

    def head(self, url: Any, **kwargs: Any) -> httpx.Response:
        return self._next().head(url, **kwargs)

    def options(self, url: Any, **kwargs: Any) -> httpx.Response:
        return self._next().options(url, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.nodes[0], name)

    def __exit__(self, *exc: object) -> None:
        """Stop the nodes and the workers (a server that stops); a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        for node in self.nodes:
            node.__exit__(None, None, None)
        if self.workers is not None:
            self.workers.stop()
