"""`stemscribe serve` as a real process (issue #14): its workers die with it, and a corpus of hostile
files sent to every upload endpoint gets 4xx answers in each dialect's shape within bounded memory."""

from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    """One `stemscribe serve` subprocess on a data dir."""

    def __init__(self, data_dir: Path, workers: int) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "STEMSCRIBE_DATA_DIR": str(data_dir),
            "STEMSCRIBE_SECRET_KEY": "serve-test",
            "STEMSCRIBE_ALLOW_PRIVATE_URLS": "1",
            "STEMSCRIBE_RATE_LIMIT_PER_S": "0",
        }
        args = ["serve", "--port", str(self.port), "--workers", str(workers), "--log-level", "warning"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stemscribe", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise AssertionError("stemscribe serve did not start")

    def children(self) -> list[int]:
        """Worker processes (multiprocessing's spawned children, not its resource tracker)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmdline = (entry / "cmdline").read_bytes()
            except (OSError, IndexError, ValueError):
                continue
            if ppid == self.proc.pid and b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
                found.append(int(entry.name))
        return found

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmHWM")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_workers_die_with_a_killed_server(tmp_path: Path) -> None:
    """Row 5: `kill -9` of the server used to leave its worker running (parent PID 1), still taking
    tasks, so a restart with `--workers 0` had tasks done."""
    server = Serve(tmp_path / "data", workers=1)
    orphans: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while not (workers := server.children()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert workers, "the server started no worker process"
        time.sleep(1.0)  # let the worker get into its own code (it loads its models next)
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        orphans = [pid for pid in workers if _alive(pid)]
        assert orphans == [], "worker outlived its server"
    finally:
        for pid in orphans:
            os.kill(pid, signal.SIGKILL)
        server.stop()

    queue_only = Serve(tmp_path / "data", workers=0)
    try:
        from .conftest import tone_wav

        up = httpx.post(
            f"{queue_only.url}/v1/uploads", files={"file": ("a.wav", tone_wav(1.0), "audio/wav")}, timeout=30
        ).json()
        task = httpx.post(
            f"{queue_only.url}/v1/transcriptions", json={"audio_id": up["id"]}, timeout=30
        ).json()
        time.sleep(2.0)
        got = httpx.get(f"{queue_only.url}/v1/transcriptions/{task['id']}", timeout=10).json()
        assert got["state"] == "queued", got  # nobody runs it: no orphaned worker is left
    finally:
        queue_only.stop()


@pytest.fixture
def corpus_site(tmp_path: Path, hostile: Any) -> Iterator[tuple[str, dict[str, bytes]]]:
    """The bad-input corpus served over HTTP on loopback (for the audio_url / fileUrl endpoints)."""
    corpus = hostile.corpus(tmp_path)
    root = tmp_path / "site"
    root.mkdir()
    for name, data in corpus.items():
        (root / name).write_bytes(data)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", corpus
    httpd.shutdown()
    httpd.server_close()


def _shape_ok(path: str, status: int, body: Any) -> str:
    """The one-line message of an error body in `path`'s dialect, asserting the dialect's shape."""
    if path.startswith("/suno/"):
        assert body["success"] is False and set(body["error"]) == {"code", "message"} and body["trace_id"]
        text = body["error"]["message"]
    elif path.startswith("/api/v1/suno/"):
        assert body["code"] == status and set(body) == {"code", "message"}
        text = body["message"]
    elif path.startswith("/api/"):
        assert body["code"] == status and body["data"] is None and set(body) == {"code", "msg", "data"}
        text = body["msg"]
    else:
        assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])
        text = body["error"]["message"]
    assert isinstance(text, str) and text and "\n" not in text
    return text


def test_bad_input_corpus_on_every_upload_endpoint(tmp_path: Path, corpus_site: tuple[str, Any]) -> None:
    """Each file gets a result (ok_ files) or a one-line 4xx in the dialect's shape: never a 500,
    never a hang; the API's peak memory stays under 1 GB throughout."""
    site, corpus = corpus_site
    server = Serve(tmp_path / "data", workers=0)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            for name, data in corpus.items():
                calls: list[tuple[str, Any]] = [
                    (p, {"files": {"file": (name, data, "application/octet-stream")}})
                    for p in ("/v1/uploads", "/v1/transcriptions", "/api/file-stream-upload")
                ]
                url = f"{site}/{name}"
                calls += [
                    ("/v1/transcriptions", {"json": {"audio_url": url}}),
                    ("/suno/upload", {"json": {"audio_url": url}}),
                    ("/api/v1/suno/upload", {"json": {"url": url}}),
                    ("/api/file-url-upload", {"json": {"fileUrl": url, "uploadPath": "x"}}),
                ]
                for path, kwargs in calls:
                    r = http.post(path, **kwargs)
                    if name.startswith("ok_"):
                        assert r.status_code in (200, 201, 202), (name, path, r.text)
                        continue
                    assert 400 <= r.status_code < 500, (name, path, r.status_code, r.text)
                    _shape_ok(path, r.status_code, r.json())
            assert http.get("/health").status_code == 200  # the keep-alive connection survived it all
        assert server.peak_rss_mb() < 1024
    finally:
        server.stop()
