"""Fixtures of the scale-out tests: PostgreSQL, RabbitMQ and Redis of this machine (each test skips,
saying which, when one is down), moto's S3 server started here, and a `Cluster` of real processes:
API nodes (`stemscribe serve`) and Celery workers (`tests/scale/worker_main.py`, a fake transcriber)."""

from __future__ import annotations

import io
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from tests.conftest import postgres_schema
from tests.servers import AMQP_URL, AWS_ENV, REDIS_URL, MotoServer, free_port, require_server

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def prefix() -> str:
    """Queue names and Redis keys of this test only."""
    return f"sstest{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with postgres_schema("stemscribe_scale_") as url:
        yield url


@pytest.fixture(scope="module")
def amqp_url(prefix: str) -> Iterator[str]:
    pytest.importorskip("celery", reason="the scale extra (celery) is not installed")
    require_server("RabbitMQ", AMQP_URL, 5672)
    yield AMQP_URL
    from kombu import Connection

    with Connection(AMQP_URL, connect_timeout=3) as conn:  # the test's durable queues go with it
        channel = conn.channel()
        for kind in ("transcribe", "separate", "callbacks"):
            try:
                channel.queue_delete(f"{prefix}.{kind}")
                channel.exchange_delete(f"{prefix}.{kind}")
            except Exception:  # noqa: BLE001 - a queue never declared
                channel = conn.channel()


@pytest.fixture
def redis_url() -> str:
    pytest.importorskip("redis", reason="the scale extra (redis) is not installed")
    require_server("Redis", REDIS_URL, 6379)
    return REDIS_URL


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3-compatible server on a free port, for the whole session."""
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    server.start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def bucket(s3_endpoint: str) -> Iterator[str]:
    """A fresh bucket; the AWS variables point this process's boto3 at moto's server."""
    import boto3

    with pytest.MonkeyPatch.context() as mp:
        for name, value in {**AWS_ENV, "AWS_ENDPOINT_URL": s3_endpoint}.items():
            mp.setenv(name, value)
        name = f"stemscribe-{secrets.token_hex(4)}"
        boto3.client("s3").create_bucket(Bucket=name)
        yield name


class Receiver(ThreadingHTTPServer):
    """A webhook receiver on loopback: records every request; answers the scripted statuses, then 200."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.lock:
                    receiver.requests.append(
                        (self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *_args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def on(self, path: str) -> list[tuple[str, dict[str, str], bytes]]:
        with self.lock:
            return [r for r in self.requests if r[0] == path]

    def wait(self, path: str, count: int, timeout: float = 60.0) -> list[tuple[str, dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.on(path)) >= count:
                return self.on(path)
            time.sleep(0.05)
        raise AssertionError(f"expected {count} callback(s) on {path}, got {len(self.on(path))}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.shutdown()
    r.server_close()


class Cluster:
    """Real processes on one configuration (PostgreSQL, RabbitMQ, S3), each with its own data dir, so
    nothing is shared but what the environment names."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Any] = []
        self.workers: list[subprocess.Popen[bytes]] = []

    def _spawn(self, name: str, args: list[str], extra: dict[str, str]) -> subprocess.Popen[bytes]:
        data = self.root / name
        data.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env, "STEMSCRIBE_DATA_DIR": str(data), **extra}
        log = (self.root / f"{name}.log").open("wb")
        self.logs.append(log)
        proc = subprocess.Popen(
            [sys.executable, *args], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")[-4000:]

    def api(self, name: str) -> str:
        """Start an API node (`stemscribe serve`); its base URL once it answers /health."""
        port = free_port()
        proc = self._spawn(
            name, ["-m", "stemscribe", "serve", "--port", str(port), "--log-level", "warning"], {}
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"API node {name} exited: {self.log(name)}")
            try:
                if httpx.get(url + "/health", timeout=10).status_code == 200:
                    return url
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError(f"API node {name} did not start: {self.log(name)}")

    def worker(self, name: str, *, delay: float = 0.0) -> subprocess.Popen[bytes]:
        """Start a Celery worker (one process taking tasks) with the fake transcriber; wait until it
        consumes."""
        (proc,) = self.start_workers([name], delay=delay)
        return proc

    def start_workers(self, names: list[str], *, delay: float = 0.0) -> list[subprocess.Popen[bytes]]:
        """`worker` for each name, started together; once all consume."""
        procs = {
            name: self._spawn(
                name,
                [str(HERE / "worker_main.py"), "1"],
                {
                    "STEMSCRIBE_TEST_DELAY": str(delay),
                    "STEMSCRIBE_TEST_READY": str(self.root / f"{name}.ready"),
                },
            )
            for name in names
        }
        deadline = time.monotonic() + 180
        for name, proc in procs.items():
            while not (self.root / f"{name}.ready").exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"worker {name} did not start: {self.log(name)}")
                time.sleep(0.1)
        return list(procs.values())

    def keys_create(self, name: str) -> tuple[str, str]:
        """`stemscribe keys create` with the cluster's variables: (key, webhook secret)."""
        run = subprocess.run(
            [sys.executable, "-m", "stemscribe", "keys", "create", "--name", name],
            env={**os.environ, **self.env, "STEMSCRIBE_DATA_DIR": str(self.root / "cli")},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        secret = run.stderr.split("webhook secret (verifies callbacks): ", 1)[1].split()[0]
        return run.stdout.strip(), secret

    def kill9(self, proc: subprocess.Popen[bytes]) -> None:
        """`kill -9` the worker and every process it started (a machine that dies); it leaves
        `workers`."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        if proc in self.workers:
            self.workers.remove(proc)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        for log in self.logs:
            log.close()


def holder_of(pid: int, procs: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """Which of `procs` started (or is) process `pid` (by session id: each runs in its own)."""
    sid = os.getsid(pid)
    for proc in procs:
        if proc.pid == sid:
            return proc
    raise AssertionError(f"process {pid} belongs to none of the workers")


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    pg_url: str,
    amqp_url: str,
    bucket: str,
    s3_endpoint: str,
    prefix: str,
) -> Iterator[Cluster]:
    """One deployment for a module's tests (starting processes is slow on a busy machine): start its
    API nodes and workers once, with `Cluster.api`/`Cluster.worker`, in a module-scoped fixture."""
    env = {
        **AWS_ENV,
        "AWS_ENDPOINT_URL": s3_endpoint,
        "STEMSCRIBE_DATABASE_URL": pg_url,
        "STEMSCRIBE_BROKER_URL": amqp_url,
        "STEMSCRIBE_STORAGE_URL": f"s3://{bucket}/deploy",
        "STEMSCRIBE_QUEUE_PREFIX": prefix,
        "STEMSCRIBE_SECRET_KEY": "scale-test-secret",
        "STEMSCRIBE_ALLOW_PRIVATE_URLS": "1",
        "STEMSCRIBE_RATE_LIMIT_PER_S": "0",
        "STEMSCRIBE_WEBHOOK_BACKOFF_S": "0.3",
        "STEMSCRIBE_WORKER_LEASE_S": "30",
        "STEMSCRIBE_AIMUSIC_WAIT_S": "30",
        "STEMSCRIBE_SYNC_WAIT_S": "60",
    }
    c = Cluster(tmp_path_factory.mktemp("cluster"), env)
    yield c
    c.close()


def s3_keys(bucket: str, prefix: str) -> list[str]:
    import boto3

    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(str(o["Key"]) for page in pages for o in page.get("Contents", []))


def body(request: tuple[str, dict[str, str], bytes]) -> Any:
    return json.loads(request[2])


class http:  # noqa: N801 - reads like the httpx module it stands for
    """httpx with a long timeout: a busy machine answers slowly, and these tests measure no time."""

    @staticmethod
    def get(url: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(url, timeout=60.0, **kwargs)

    @staticmethod
    def post(url: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(url, timeout=60.0, **kwargs)


def song(seconds: float = 2.0, sr: int = 16000) -> bytes:
    """Tones over clicks, as WAV."""
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * 220.0 * t) + 0.1 * np.sin(2 * np.pi * 330.0 * t)
    y[:: sr // 4] += 0.5  # clicks, so a harmonic/percussive split has both parts
    buf = io.BytesIO()
    sf.write(buf, y.astype(np.float32), sr, format="WAV")
    return buf.getvalue()


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def upload(url: str, key: str, seconds: float = 2.0) -> str:
    r = http.post(
        f"{url}/v1/uploads", files={"file": ("song.wav", song(seconds), "audio/wav")}, headers=bearer(key)
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def poll(url: str, path: str, key: str, done: Any, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = http.get(url + path, headers=bearer(key)).json()
        if done(answer):
            return answer  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError(f"{path} still {answer}")
