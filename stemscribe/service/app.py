"""`create_app(settings)`: the FastAPI application with every dialect, its workers and webhook sender."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stemscribe.errors import ConfigurationError
from stemscribe.jobs.runner import LocalRunner, Runner
from stemscribe.jobs.storage import ArtifactStorage, storage_for
from stemscribe.jobs.store import SqlJobStore, open_store
from stemscribe.jobs.webhooks import WebhookSender
from stemscribe.jobs.worker import TranscriberFactory, default_transcriber_factory
from stemscribe.service.context import ServiceContext
from stemscribe.service.errors import ApiError, install_error_handlers
from stemscribe.service.routers import acedata, aimusicapi, kie, native, ops, score
from stemscribe.service.shapes import DialectRenderer
from stemscribe.settings import Settings

logger = logging.getLogger(__name__)

DESCRIPTION = """Songs and stems to per-instrument MIDI, self-hosted.

Four dialects of one service: stemscribe's own `/v1` API, and drop-in replacements for AceData
(`/suno/...`), aimusicapi (`/api/v1/suno/...`) and kie.ai (`/api/v1/vocal-removal/...`,
`/api/v1/midi/...`). Authenticate with `Authorization: Bearer <key>` (`stemscribe keys create`).
"""


def _too_large_message(limit: int, multipart: bool) -> str:
    setting = "STEMSCRIBE_MAX_UPLOAD_BYTES" if multipart else "STEMSCRIBE_MAX_JSON_BYTES"
    what = "request body" if multipart else "non-multipart request body"
    return f"{what} exceeds the {limit} byte limit ({setting})"


class BodyTooLarge(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(413, "too_large", message)


class Metrics:
    """The app's Prometheus registry: requests, latency, and (at scrape time) tasks and deliveries."""

    def __init__(self, store: SqlJobStore) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "stemscribe_http_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "stemscribe_http_request_seconds",
            "HTTP request latency",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60),
            registry=self.registry,
        )
        self.store = store
        self.registry.register(self)  # type: ignore[arg-type]

    def collect(self) -> Any:
        tasks = GaugeMetricFamily("stemscribe_tasks", "Tasks by state", labels=["state"])
        for state, n in sorted(self.store.count_tasks().items()):
            tasks.add_metric([state], n)
        yield tasks


class EdgeMiddleware:
    """Caps request bodies (413 while streaming, before the handler sees them) and records metrics.

    Multipart bodies (uploads) may reach `max_body`; every other body (JSON) only `max_json`.
    """

    def __init__(self, app: ASGIApp, *, max_body: int, max_json: int, metrics: Metrics) -> None:
        self.app, self.max_body, self.max_json, self.metrics = app, max_body, max_json, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", ()))
        multipart = headers.get(b"content-type", b"").lower().startswith(b"multipart/form-data")
        limit = self.max_body if multipart else self.max_json
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                from starlette.requests import Request

                from stemscribe.service.errors import render_error

                response = render_error(
                    Request(scope), 413, "too_large", _too_large_message(limit, multipart)
                )
                await response(scope, receive, send)
                self.metrics.requests.labels(scope["method"], "unmatched", "413").inc()
                return
        seen = 0

        async def capped_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(_too_large_message(limit, multipart))
            return message

        status = [500]

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, capped_receive, tracking_send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            self.metrics.requests.labels(scope["method"], path, str(status[0])).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - started)


def _include_web(app: FastAPI) -> None:
    try:
        from stemscribe.web.routes import router as web_router
    except ImportError:
        logger.info("stemscribe.web is not installed; serving the API only")
        return
    app.include_router(web_router)


def create_app(
    settings: Settings | None = None,
    *,
    store: SqlJobStore | None = None,
    storage: ArtifactStorage | None = None,
    transcriber_factory: TranscriberFactory = default_transcriber_factory,
    runner: Runner | None = None,
    start_workers: bool = True,
    webhook_transport: httpx.BaseTransport | None = None,
    fetch_transport: httpx.BaseTransport | None = None,
) -> FastAPI:
    """Build the app. The database is migrated here; workers, webhook sender and purge start with the app.

    Tests inject a fake `transcriber_factory` (and httpx transports); production passes settings only.
    """
    settings = settings or Settings()
    settings.ensure_dirs()
    store = store or open_store(
        settings.resolved_database_url,
        webhook_attempts=settings.webhook_attempts,
        busy_timeout_s=settings.db_busy_timeout_s,
    )
    if settings.scale_out and not settings.secret_key:
        raise ConfigurationError(
            "scale-out needs STEMSCRIBE_SECRET_KEY, the same on every node: signed links made on one "
            "node must verify on the others"
        )
    storage = storage or storage_for(settings)
    ctx = ServiceContext(settings, store, storage, fetch_transport=fetch_transport)
    ctx.local()
    metrics = Metrics(store)
    ctx.metrics = metrics
    if runner is None and settings.scale_out:
        from stemscribe.jobs.broker import CeleryRunner

        runner = CeleryRunner(settings, store)  # the jobs and callbacks run in `stemscribe worker`s
    elif runner is None and start_workers and settings.workers > 0:
        runner = LocalRunner(settings, store, storage, transcriber_factory=transcriber_factory)
    ctx.runner = runner
    sender = WebhookSender(
        settings, store, DialectRenderer(ctx), transport=webhook_transport, poll_s=settings.webhook_poll_s
    )
    stop = threading.Event()

    def purge_loop() -> None:
        while not stop.wait(settings.purge_interval_s):
            try:
                ctx.purge()
            except Exception:  # noqa: BLE001 - purge retries on its next round
                logger.exception("purge")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        threads = [threading.Thread(target=purge_loop, name="purge", daemon=True)]
        if not settings.scale_out:  # scale-out: callbacks are Celery tasks (stemscribe.cluster)
            threads.append(
                threading.Thread(target=sender.run, args=(stop,), name="webhook-sender", daemon=True)
            )
        if runner is not None:
            runner.start()
        for t in threads:
            t.start()
        try:
            yield
        finally:
            stop.set()
            sender.wake.set()
            if runner is not None:
                runner.stop()
            for t in threads:
                t.join(10)
            sender.close()
            store.engine.dispose()

    app = FastAPI(
        title="stemscribe",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.state.sender = sender
    install_error_handlers(app)
    for module in (score, native, acedata, aimusicapi, kie, ops):  # score first: see its docstring
        app.include_router(module.router)
    _include_web(app)
    app.add_middleware(
        EdgeMiddleware,
        max_body=settings.max_upload_bytes + 64 * 1024,
        max_json=settings.max_json_bytes,
        metrics=metrics,
    )
    return app
