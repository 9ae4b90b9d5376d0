"""Fixtures of the service tests: a fake transcriber, an app on a temp data dir, tiny audio."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from stemscribe.audio import load_audio
from stemscribe.result import Instrument, NoteEvent, Result
from stemscribe.service import create_app
from stemscribe.settings import Settings
from stemscribe.stems import Family

from .scale_out import Deployment, ScaleOut

LOOPBACK = ("127.0.0.1", 50000)


def tone_wav(
    seconds: float = 1.0, freqs: tuple[float, ...] = (440.0,), sr: int = 16000, fmt: str = "WAV"
) -> bytes:
    """A few sine tones one after another, as WAV (or FLAC) bytes."""
    t = np.arange(int(seconds * sr)) / sr
    parts = np.array_split(t, len(freqs))
    y = np.concatenate([0.3 * np.sin(2 * np.pi * f * p) for f, p in zip(freqs, parts, strict=True)]).astype(
        np.float32
    )
    buf = io.BytesIO()
    sf.write(buf, y, sr, format=fmt)
    return buf.getvalue()


class FakeTranscriber:
    """Stands in for `transcription.pipeline.Transcriber`: one note per second of the decoded audio."""

    def __init__(self, *, delay: float = 0.0, fail: Exception | None = None) -> None:
        self.delay, self.fail = delay, fail
        self.calls: list[str] = []
        self.gate: threading.Event | None = None

    def transcribe(self, source: Any, *, stem: str = "auto", progress: Any = None) -> Result:
        self.calls.append(stem)
        if progress:
            progress("loading", 0.0)
        audio = load_audio(source, sr=None)
        if self.gate is not None:
            self.gate.wait(10)
        if self.delay:
            time.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        if progress:
            progress("transcribing", 0.5)
        n = max(1, int(audio.duration))
        notes = [NoteEvent(60 + i % 12, float(i), i + 0.5, 0.8) for i in range(n)]
        inst = Instrument("Acoustic Grand Piano", 0, False, Family.PIANO, notes)
        if progress:
            progress("done", 1.0)
        return Result([inst], audio.duration, stem if stem != "auto" else "mix", 120.0, [0.0, 0.5], "none")


@pytest.fixture
def fake() -> FakeTranscriber:
    return FakeTranscriber()


@pytest.fixture(scope="session")
def scale_out_servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ScaleOut | None]:
    """With --scale-out: moto's S3 server and a bucket for the session, after checking that
    PostgreSQL, RabbitMQ and Redis answer (each test skips, saying which, when one does not)."""
    if not request.config.getoption("--scale-out"):
        yield None
        return
    with ScaleOut.open(tmp_path_factory.mktemp("scale-out")) as servers:
        yield servers


@pytest.fixture
def scale_out(scale_out_servers: ScaleOut | None) -> ScaleOut | None:
    """The scale-out servers with --scale-out, else None (the embedded configuration)."""
    if scale_out_servers is not None:
        scale_out_servers.check()
    return scale_out_servers


@pytest.fixture
def expected_workers(scale_out: ScaleOut | None, settings: Settings) -> int:
    """How many workers a started server's `/health` counts: its own, or the deployment's Celery
    workers that answer its ping."""
    return scale_out.workers if scale_out is not None else settings.workers


@pytest.fixture
def settings(tmp_path: Any) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        workers=1,
        worker_threads=True,
        sync_wait_s=20.0,
        aimusic_wait_s=10.0,
        rate_limit_per_s=0.0,
        webhook_backoff_s=0.05,
        webhook_poll_s=0.05,
        webhook_attempts=3,
        secret_key="test-secret",
        max_upload_bytes=2_000_000,
    )


class Receiver:
    """A webhook receiver behind httpx.MockTransport: records requests, answers with scripted statuses."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.statuses: list[int] = []
        self.event = threading.Event()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200:
            self.event.set()
        return httpx.Response(status, json={"ok": status == 200})

    def wait(self, count: int = 1, timeout: float = 15.0) -> list[httpx.Request]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ok = [r for r in self.requests]
            if len(ok) >= count:
                return ok
            time.sleep(0.02)
        raise AssertionError(f"expected {count} callback(s), got {len(self.requests)}")

    def json(self, i: int = -1) -> Any:
        return json.loads(self.requests[i].content)


AUDIO_FILES = {"/song.wav": tone_wav(2.0, (220.0, 330.0)), "/big.wav": tone_wav(100.0)}


def audio_server(request: httpx.Request) -> httpx.Response:
    """Serves audio_url fetches in tests (a fake of the outbound transport)."""
    body = AUDIO_FILES.get(request.url.path)
    if body is None:
        if request.url.path == "/text":
            return httpx.Response(200, content=b"hello, not audio", headers={"content-type": "text/plain"})
        return httpx.Response(404)
    return httpx.Response(200, content=body, headers={"content-type": "audio/wav"})


@pytest.fixture
def no_demucs(monkeypatch: Any) -> None:
    """Pretend the Demucs backend is unavailable, so separation takes the HPSS fallback."""
    import stemscribe.jobs.separation as sep

    monkeypatch.setattr(sep, "_unavailable_reason", lambda name: "weights not fetched")


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


def start_client(settings: Settings, transcriber: Any, receiver: Any, **app_kwargs: Any) -> TestClient:
    """A started app on `settings` with the test doubles (the transcriber, the webhook receiver, the
    audio server) and its test client; the caller closes it."""
    app = create_app(
        settings,
        transcriber_factory=lambda _s: transcriber,
        webhook_transport=httpx.MockTransport(receiver),
        fetch_transport=httpx.MockTransport(audio_server),
        **app_kwargs,
    )
    client = TestClient(app, client=LOOPBACK)
    client.__enter__()
    return client


@pytest.fixture
def make_client(
    settings: Settings, fake: FakeTranscriber, receiver: Receiver, scale_out: ScaleOut | None
) -> Iterator[Callable[..., TestClient]]:
    """`make(settings, transcriber, same_dir=False)`: a started app and its test client. Each call
    is a new server on a data dir (a deployment, with --scale-out) of its own, unless `same_dir`:
    then the same data (the same deployment) as the last one, as if that server had restarted."""
    clients: list[Any] = []
    deployments: list[Deployment] = []

    def make(
        settings: Settings = settings, transcriber: Any = fake, *, same_dir: bool = False, **kwargs: Any
    ) -> TestClient:
        if clients and not same_dir:  # each live app gets its own database, so workers do not mix
            settings = settings.model_copy(
                update={"data_dir": settings.data_dir.with_name(f"data{len(clients)}")}
            )
        if scale_out is not None:
            if not deployments or not same_dir:
                deployments.append(scale_out.deployment())
            nodes = deployments[-1].start(settings, transcriber, receiver, **kwargs)
            clients.append(nodes)
            return nodes  # type: ignore[return-value]
        client = start_client(settings, transcriber, receiver, **kwargs)
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)
    for d in deployments:
        d.close()


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


def upload(
    client: TestClient, data: bytes | None = None, name: str = "song.wav", headers: Any = None
) -> dict[str, Any]:
    headers = {k: v for k, v in (headers or {}).items() if k.lower() != "content-type"}
    r = client.post(
        "/v1/uploads",
        files={"file": (name, data or tone_wav(2.0, (220.0, 330.0)), "audio/wav")},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    return r.json()


def wait_task(client: TestClient, task_id: str, headers: Any = None, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/v1/transcriptions/{task_id}", headers=headers).json()
        if body["state"] in ("succeeded", "failed", "expired"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} still {body['state']}")


@pytest.fixture
def live_server(receiver: Receiver) -> Iterator[Callable[..., str]]:
    """Start the app under a real uvicorn server in a thread (concurrent requests, as in production);
    returns its base URL."""
    import socket

    import uvicorn

    servers: list[tuple[Any, threading.Thread]] = []

    def start(settings: Settings, transcriber: Any) -> str:
        app = create_app(
            settings,
            transcriber_factory=lambda _s: transcriber,
            webhook_transport=httpx.MockTransport(receiver),
            fetch_transport=httpx.MockTransport(audio_server),
        )
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started, "uvicorn did not start"
        servers.append((server, thread))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(15)
