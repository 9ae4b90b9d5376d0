"""Webhook retries and persistence, restart recovery, expiry and purge, outbound address guard."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from standardwebhooks import Webhook

from stemscribe.jobs.models import TaskRecord
from stemscribe.jobs.netguard import BlockedAddressError, guarded_client, refusal_reason
from stemscribe.jobs.storage import result_key, task_prefix
from stemscribe.jobs.store import SqlJobStore
from stemscribe.service import create_app
from stemscribe.settings import Settings

from .conftest import LOOPBACK, FakeTranscriber, Receiver, upload, wait_task


def test_webhook_retries_keep_one_id_and_show_state(client: TestClient, receiver: Receiver) -> None:
    receiver.statuses = [500, 503]
    up = upload(client)
    task = client.post(
        "/v1/transcriptions", json={"audio_id": up["id"], "callback_url": "https://hooks.example/n"}
    ).json()
    reqs = receiver.wait(3)
    assert len({r.headers["webhook-id"] for r in reqs}) == 1
    assert all(r.content == reqs[0].content for r in reqs)
    secret = client.app.state.ctx.local().webhook_secret  # type: ignore[attr-defined]
    Webhook(secret).verify(reqs[-1].content, dict(reqs[-1].headers))
    body = json.loads(reqs[-1].content)
    assert body["id"] == task["id"] and body["state"] == "succeeded" and body["result"]["instruments"]
    for _ in range(100):
        cb = client.get(f"/v1/transcriptions/{task['id']}").json()["callback"]
        if cb["state"] == "delivered":
            break
        time.sleep(0.05)
    assert cb["state"] == "delivered" and cb["attempts"] == 3 and cb["last_status"] == 200
    assert cb["webhook_id"] == reqs[0].headers["webhook-id"]


def test_webhook_gives_up_after_the_configured_attempts(client: TestClient, receiver: Receiver) -> None:
    receiver.statuses = [500] * 10
    up = upload(client)
    task = client.post(
        "/v1/transcriptions", json={"audio_id": up["id"], "callback_url": "https://hooks.example/n"}
    ).json()
    receiver.wait(3)
    time.sleep(0.3)
    assert len(receiver.requests) == 3
    cb = client.get(f"/v1/transcriptions/{task['id']}").json()["callback"]
    assert cb["state"] == "failed" and cb["attempts"] == 3 and cb["last_error"] == "HTTP 500"


def test_queued_tasks_and_pending_webhooks_survive_a_restart(
    make_client: Any, settings: Settings, receiver: Receiver, fake: FakeTranscriber
) -> None:
    # First server: no workers, so the task stays queued.
    first = make_client(settings.model_copy(update={"workers": 0}))
    up = upload(first)
    task = first.post(
        "/v1/transcriptions", json={"audio_id": up["id"], "callback_url": "https://hooks.example/r"}
    ).json()
    first.__exit__(None, None, None)
    # Second server on the same data: runs it; its first callback attempt fails, and it stops.
    receiver.statuses = [500]
    second = make_client(settings.model_copy(update={"webhook_backoff_s": 0.5}), same_dir=True)
    receiver.wait(1)
    second.__exit__(None, None, None)
    # Third server: delivers the pending callback under the same webhook-id.
    third = make_client(settings, same_dir=True)
    reqs = receiver.wait(2)
    assert reqs[0].headers["webhook-id"] == reqs[1].headers["webhook-id"]
    assert json.loads(reqs[1].content)["id"] == task["id"]
    assert wait_task(third, task["id"])["state"] == "succeeded"
    assert third.get(f"/v1/uploads/{up['id']}/audio").status_code == 200


def test_a_task_whose_worker_died_runs_again(make_client: Any, settings: Settings) -> None:
    first = make_client(settings.model_copy(update={"workers": 0}))
    up = upload(first)
    task = first.post("/v1/transcriptions", json={"audio_id": up["id"]}).json()
    store: SqlJobStore = first.app.state.ctx.store  # type: ignore[attr-defined]
    import socket

    claimed = store.claim_task(f"{socket.gethostname()}:999999999", 60.0)  # a pid that does not exist
    assert claimed is not None and claimed.id == task["id"]
    assert first.get(f"/v1/transcriptions/{task['id']}").json()["state"] == "running"
    first.__exit__(None, None, None)
    second = make_client(settings, same_dir=True)
    done = wait_task(second, task["id"])
    assert done["state"] == "succeeded"
    assert second.app.state.ctx.store.get_task(task["id"], None).attempts == 2  # type: ignore[attr-defined]


def test_results_expire_then_purge_removes_their_files(client: TestClient) -> None:
    up = upload(client)
    task = client.post("/v1/transcriptions", json={"audio_id": up["id"]}).json()
    assert wait_task(client, task["id"])["state"] == "succeeded"
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    with ctx.store.session() as s:
        s.execute(update(TaskRecord).values(expires_at=time.time() - 1))
    body = client.get(f"/v1/transcriptions/{task['id']}").json()
    assert body["state"] == "expired" and body["result"] is None and body["midi_url"] is None
    r = client.get(f"/v1/transcriptions/{task['id']}.mid")
    assert r.status_code == 410 and r.json()["error"]["code"] == "expired"
    stored = result_key(task["id"], "result.mid")
    assert ctx.storage.exists(stored)  # local files, or the bucket with --scale-out
    assert ctx.purge() == (1, 0)
    assert not ctx.storage.exists(stored) and not list(ctx.storage.keys(task_prefix(task["id"])))
    assert client.get(f"/v1/transcriptions/{task['id']}").json()["state"] == "expired"


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["content-length"]))
        self.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def local_receiver() -> Iterator[str]:
    _Hook.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_guard_refuses_private_addresses_on_connect(local_receiver: str) -> None:
    for address in (
        "127.0.0.1",
        "::1",
        "10.1.2.3",
        "192.168.0.1",
        "169.254.169.254",
        "::ffff:127.0.0.1",
        "fd00:ec2::254",
    ):
        assert refusal_reason(address) is not None, address
    assert refusal_reason("93.184.216.34") is None
    with guarded_client() as c, pytest.raises(BlockedAddressError, match="loopback"):
        c.post(local_receiver, content=b"{}")
    with guarded_client() as c, pytest.raises(BlockedAddressError, match="loopback"):
        c.post(local_receiver.replace("127.0.0.1", "localhost"), content=b"{}")
    assert _Hook.received == []
    with guarded_client(allow_private=True) as c:
        assert c.post(local_receiver, content=b"{}").status_code == 204


def test_real_callback_to_a_local_receiver(tmp_path: Any, local_receiver: str, fake: FakeTranscriber) -> None:
    def run(allow: bool) -> TestClient:
        s = Settings(
            data_dir=tmp_path / f"d{allow}",
            workers=1,
            worker_threads=True,
            allow_private_urls=allow,
            webhook_backoff_s=0.05,
            webhook_poll_s=0.05,
            webhook_attempts=2,
            secret_key="k",
        )
        return TestClient(create_app(s, transcriber_factory=lambda _s: fake), client=LOOPBACK)

    with run(False) as refused:  # an address literal is refused at submit (issue #14 row 9)
        up = upload(refused)
        r = refused.post("/v1/transcriptions", json={"audio_id": up["id"], "callback_url": local_receiver})
        assert r.status_code == 400 and "loopback" in r.json()["error"]["message"]
    assert _Hook.received == []

    with run(True) as allowed:
        up = upload(allowed)
        allowed.post("/v1/transcriptions", json={"audio_id": up["id"], "callback_url": local_receiver})
        for _ in range(200):
            if _Hook.received:
                break
            time.sleep(0.05)
        headers, body = _Hook.received[0]
        secret = allowed.app.state.ctx.local().webhook_secret  # type: ignore[attr-defined]
        assert (
            Webhook(secret).verify(body, {k.lower(): v for k, v in headers.items()})["state"] == "succeeded"
        )


def test_fetch_guard_applies_to_audio_urls(tmp_path: Any, fake: FakeTranscriber) -> None:
    s = Settings(data_dir=tmp_path / "d", workers=0, secret_key="k")
    with TestClient(create_app(s, transcriber_factory=lambda _s: fake), client=LOOPBACK) as client:
        r = client.post("/suno/upload", json={"audio_url": "http://169.254.169.254/latest/meta-data/"})
        assert r.status_code == 400 and "metadata" in r.json()["error"]["message"]
        r = client.post("/suno/upload", json={"audio_url": "http://localhost:1/a.wav"})
        assert r.status_code == 400 and "loopback" in r.json()["error"]["message"]


def test_redirects_to_private_addresses_are_refused() -> None:
    from stemscribe.jobs.netguard import fetch_stream

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": "file:///etc/passwd"})

    with (
        pytest.raises(BlockedAddressError),
        fetch_stream(
            "https://a.example/x", allow_private=False, timeout=5, transport=httpx.MockTransport(handler)
        ),
    ):
        pass
