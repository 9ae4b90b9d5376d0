"""Scale-out figures beside the embedded mode: jobs per minute with 1 and 2 workers, and the API's polls
and submissions per second with 1 and 2 API nodes (wrk).

Embedded: `stemscribe serve` with 1 or 2 in-process workers on SQLite. Scale-out: `stemscribe serve`
nodes and `stemscribe worker`s (concurrency 1 each) on the local PostgreSQL and RabbitMQ, with moto's
S3 server (started here) as the bucket. Jobs are the real transcriber on a 3-second clip: --jobs of
them are submitted at once and timed until the last one succeeds. wrk drives each node with
--connections / nodes connections; the req/s of the nodes are summed.

    .venv/bin/python -m bench.scale [--jobs 12] [--duration 10] [--connections 16]

Needs wrk (apt-get install wrk), PostgreSQL on 127.0.0.1:5432 (database `test`, trust), RabbitMQ on
127.0.0.1:5672 (guest) and the scale and dev extras (celery, boto3, moto[server]).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.load import ROOT, STEMSCRIBE, _clip, _free_port, run_wrk

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
AMQP = "amqp://guest:guest@127.0.0.1:5672//"


class Deployment:
    """Processes sharing one environment (each with its own data dir); stopped on exit."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, {**os.environ, **env}
        root.mkdir(parents=True, exist_ok=True)
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, name: str, *args: str, **extra: str) -> subprocess.Popen[bytes]:
        env = {**self.env, "STEMSCRIBE_DATA_DIR": str(self.root / name), **extra}
        log = (self.root / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [STEMSCRIBE, *args],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def api(self, name: str, workers: int = 0) -> tuple[str, int]:
        port = _free_port()
        proc = self.spawn(
            name, "serve", "--port", str(port), "--workers", str(workers), "--log-level", "warning"
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health", timeout=5).status_code == 200:
                    return url, proc.pid
            except httpx.HTTPError:
                time.sleep(0.3)
        raise RuntimeError(f"{name} did not start; see {self.root / name}.log")

    def workers_alive(self, url: str, count: int) -> None:
        deadline = time.monotonic() + 240
        while httpx.get(url + "/health", timeout=10).json()["workers"] < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"fewer than {count} workers answered within 240 s")
            time.sleep(1)

    def key(self, data_dir: str = "cli") -> str:
        """A new key, in the database of the process whose data dir is `data_dir` (embedded: the API's)."""
        out = subprocess.run(
            [STEMSCRIBE, "keys", "create", "--name", "bench"],
            env={**self.env, "STEMSCRIBE_DATA_DIR": str(self.root / data_dir)},
            capture_output=True,
            check=True,
            cwd=ROOT,
        )
        return out.stdout.decode().strip()

    def close(self) -> None:
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


@contextlib.contextmanager
def moto_server(root: Path) -> Iterator[str]:
    port = _free_port()
    log = (root / "moto.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def jobs_per_minute(url: str, key: str, jobs: int) -> float:
    """Submit `jobs` transcriptions of the clip at once; jobs per minute until the last succeeds."""
    h = {"authorization": f"Bearer {key}"}
    audio = httpx.post(url + "/v1/uploads", files={"file": ("c.wav", _clip(), "audio/wav")}, headers=h).json()
    started = time.monotonic()
    ids = [
        httpx.post(
            url + "/v1/transcriptions", json={"audio_id": audio["id"], "stem": "piano"}, headers=h
        ).json()["id"]
        for _ in range(jobs)
    ]
    pending = set(ids)
    while pending:
        for task_id in list(pending):
            state = httpx.get(f"{url}/v1/transcriptions/{task_id}", headers=h, timeout=30).json()["state"]
            if state == "failed":
                raise RuntimeError(f"task {task_id} failed")
            if state == "succeeded":
                pending.discard(task_id)
        time.sleep(0.5)
    return 60.0 * jobs / (time.monotonic() - started)


def api_rates(urls: list[str], pids: list[int], key: str, args: argparse.Namespace) -> dict[str, float]:
    """Polls/s and submissions/s summed over the nodes (wrk on each node at once)."""
    h = {"authorization": f"Bearer {key}"}
    audio = httpx.post(
        urls[0] + "/v1/uploads", files={"file": ("c.wav", _clip(), "audio/wav")}, headers=h
    ).json()
    task = httpx.post(urls[0] + "/v1/transcriptions", json={"audio_id": audio["id"]}, headers=h).json()
    conns = max(1, args.connections // len(urls))
    body = json.dumps({"audio_id": audio["id"]})
    submit = (
        f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    out: dict[str, float] = {}
    for name, path, script in (
        ("polls/s", f"/v1/transcriptions/{task['id']}", None),
        ("submissions/s", "/v1/transcriptions", submit),
    ):
        with ThreadPoolExecutor(len(urls)) as pool:
            futures = [
                pool.submit(
                    run_wrk,
                    url + path,
                    key=key,
                    duration=args.duration,
                    connections=conns,
                    threads=1,
                    script=script,
                    pid=pid,
                )
                for url, pid in zip(urls, pids, strict=True)
            ]
            runs = [f.result() for f in futures]
        out[name] = sum(r["requests_per_s"] for r in runs)
        out[name + " non-2xx"] = sum(r["non_2xx"] for r in runs)
    return out


def embedded(root: Path, workers: int, args: argparse.Namespace) -> dict[str, float]:
    d = Deployment(root / f"embedded-{workers}", {"STEMSCRIBE_RATE_LIMIT_PER_S": "0"})
    try:
        url, pid = d.api("api", workers=workers)
        key = d.key("api")
        figures = {"jobs/min": jobs_per_minute(url, key, args.jobs)}
        if workers == 1:
            figures.update(api_rates([url], [pid], key, args))
        return figures
    finally:
        d.close()


def scale_out(root: Path, s3: str, nodes: int, workers: int, args: argparse.Namespace) -> dict[str, float]:
    import boto3

    bucket = f"bench-{secrets.token_hex(4)}"
    aws = {
        "AWS_ENDPOINT_URL": s3,
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with contextlib.ExitStack() as stack:
        stack.enter_context(_env(aws))
        boto3.client("s3").create_bucket(Bucket=bucket)
    schema = f"bench_{secrets.token_hex(4)}"
    import psycopg

    admin = psycopg.connect("host=127.0.0.1 dbname=test user=postgres", autocommit=True)
    admin.execute(f'CREATE SCHEMA "{schema}"')
    d = Deployment(
        root / f"scale-{nodes}x{workers}",
        {
            **aws,
            "STEMSCRIBE_DATABASE_URL": f"{PG}?options=-csearch_path%3D{schema}",
            "STEMSCRIBE_BROKER_URL": AMQP,
            "STEMSCRIBE_STORAGE_URL": f"s3://{bucket}/bench",
            "STEMSCRIBE_QUEUE_PREFIX": schema,
            "STEMSCRIBE_SECRET_KEY": "bench",
            "STEMSCRIBE_RATE_LIMIT_PER_S": "0",
        },
    )
    try:
        started = [d.api(f"api-{n}") for n in range(nodes)]
        urls, pids = [u for u, _ in started], [p for _, p in started]
        for n in range(workers):
            d.spawn(f"worker-{n}", "worker", "--concurrency", "1")
        key = d.key()
        figures: dict[str, float] = {}
        if workers:
            d.workers_alive(urls[0], workers)
            figures["jobs/min"] = jobs_per_minute(urls[0], key, args.jobs)
        else:
            figures.update(api_rates(urls, pids, key, args))
        return figures
    finally:
        d.close()
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


@contextlib.contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--jobs", type=int, default=12, help="transcriptions per jobs/min figure (default 12)"
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections over all nodes")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("bench.scale needs wrk: apt-get install wrk", file=sys.stderr)
        return 2
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="stemscribe-scale-") as tmp:
        root = Path(tmp)
        rows["embedded, 1 worker"] = embedded(root, 1, args)
        rows["embedded, 2 workers"] = embedded(root, 2, args)
        with moto_server(root) as s3:
            rows["scale-out, 1 worker"] = scale_out(root, s3, 1, 1, args)
            rows["scale-out, 2 workers"] = scale_out(root, s3, 1, 2, args)
            rows["scale-out, 1 API node"] = scale_out(root, s3, 1, 0, args)
            rows["scale-out, 2 API nodes"] = scale_out(root, s3, 2, 0, args)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    cols = ("jobs/min", "polls/s", "submissions/s")
    print(f"{'setup':26}" + "".join(f"{c:>15}" for c in cols))
    for name, f in rows.items():
        print(f"{name:26}" + "".join(f"{f[c]:15.1f}" if c in f else f"{'-':>15}" for c in cols))
    print(
        f"({args.jobs} jobs of a 3 s clip, real transcriber; wrk -c{args.connections} -d{args.duration}s "
        f"over the nodes; {os.cpu_count()} CPU cores shared by everything; "
        f"load average {os.getloadavg()[0]:.1f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
