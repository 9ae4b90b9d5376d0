"""The service scaled out (issue #17): two API nodes and Celery workers as real processes, on
PostgreSQL, RabbitMQ and moto's S3 server; nothing shared but what the environment names."""

from __future__ import annotations

import io
import time
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf
from standardwebhooks.webhooks import Webhook

from .conftest import Cluster, Receiver, body, holder_of, s3_keys

pytestmark = pytest.mark.services

SLOW = 4.0
"""Seconds the workers' fake spends on audio longer than 3 s (the kill test's)."""


@pytest.fixture(scope="module")
def nodes(cluster: Cluster) -> tuple[str, str]:
    """Two API nodes and two workers (each its own process and data dir), for the whole module."""
    a, b = cluster.api("api-a"), cluster.api("api-b")
    cluster.workers = [cluster.worker(f"worker-{n}", delay=SLOW) for n in (1, 2)]
    return a, b


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


def verify(secret: str, request: tuple[str, dict[str, str], bytes]) -> None:
    Webhook(secret).verify(request[2], request[1])


def on_node(link: str, node: str) -> str:
    """The same signed link, asked of another node."""
    path = link.split("/files/", 1)[1]
    return f"{node}/files/{path}"


def test_two_api_nodes_share_keys_tasks_links_and_callbacks(
    cluster: Cluster, nodes: tuple[str, str], receiver: Receiver, bucket: str
) -> None:
    a, b = nodes
    key, secret = cluster.keys_create("reseller")  # written once, to the shared database

    # native: submit on A, poll on B; the first callback attempt fails, the retry has the same id
    audio_id = upload(a, key)
    receiver.statuses = [500]
    r = http.post(
        f"{a}/v1/transcriptions",
        json={"audio_id": audio_id, "callback_url": receiver.url + "/native"},
        headers=bearer(key),
    )
    assert r.status_code in (200, 201, 202), r.text
    task_id = r.json()["id"]
    done = poll(b, f"/v1/transcriptions/{task_id}", key, lambda t: t["state"] in ("succeeded", "failed"))
    assert done["state"] == "succeeded", done
    assert done["result"]["instruments"][0]["notes"], done
    midi_a = http.get(f"{a}/v1/transcriptions/{task_id}.mid", headers=bearer(key))
    midi_b = http.get(f"{b}/v1/transcriptions/{task_id}.mid", headers=bearer(key))
    assert midi_a.status_code == midi_b.status_code == 200 and midi_a.content == midi_b.content
    assert midi_a.content.startswith(b"MThd")
    first, second = receiver.wait("/native", 2)
    assert first[1]["webhook-id"] == second[1]["webhook-id"]
    verify(secret, second)
    assert body(second)["id"] == task_id and body(second)["state"] == "succeeded"
    assert len(receiver.on("/native")) == 2

    # the signed links of one node download from the other (one secret, one bucket)
    audio_link = body(second)["audio_url"]
    assert audio_link.startswith(a)
    for node in (a, b):
        got = http.get(on_node(audio_link, node))
        assert got.status_code == 200 and got.content == song()
    answer = http.post(f"{b}/api/v1/suno/midi", json={"clip_id": audio_id}, headers=bearer(key))
    assert answer.json()["code"] == 200, answer.text
    midi_url = answer.json()["data"]["midi_url"]
    for node in (a, b):
        got = http.get(on_node(midi_url, node))
        assert got.status_code == 200 and got.content.startswith(b"MThd")

    # AceData's synchronous call on B for the upload made on A
    sync = http.post(f"{b}/suno/midi", json={"audio_id": audio_id}, headers=bearer(key))
    assert sync.status_code == 200 and sync.json()["data"][0]["state"] == "complete", sync.text

    # kie: a separation (its own queue) on B, its stems' MIDI on A, both called back
    r = http.post(
        f"{b}/api/v1/vocal-removal/generate",
        json={
            "taskId": audio_id,
            "audioId": audio_id,
            "type": "split_stem",
            "callBackUrl": receiver.url + "/sep",
        },
        headers=bearer(key),
    )
    sep_id = r.json()["data"]["taskId"]
    rec = poll(
        a,
        f"/api/v1/vocal-removal/record-info?taskId={sep_id}",
        key,
        lambda d: d["data"]["successFlag"] != "PENDING",
        timeout=120,
    )["data"]
    assert rec["successFlag"] == "SUCCESS", rec
    stems = [o["id"] for o in rec["response"]["originData"]]
    assert len(stems) == 2
    assert http.get(on_node(rec["response"]["drumsUrl"], b)).status_code == 200
    (sep_cb,) = receiver.wait("/sep", 1)
    assert body(sep_cb)["data"]["task_id"] == sep_id
    r = http.post(
        f"{a}/api/v1/midi/generate",
        json={"taskId": sep_id, "callBackUrl": receiver.url + "/midi"},
        headers=bearer(key),
    )
    midi_id = r.json()["data"]["taskId"]
    rec = poll(b, f"/api/v1/midi/record-info?taskId={midi_id}", key, lambda d: d["data"]["successFlag"] != 0)[
        "data"
    ]
    assert rec["successFlag"] == 1 and len(rec["midiData"]["instruments"]) == 2, rec
    (midi_cb,) = receiver.wait("/midi", 1)
    assert body(midi_cb)["task_id"] == midi_id

    # every artifact is in the bucket, none on an API node's disk
    keys = s3_keys(bucket, "deploy/")
    assert f"deploy/tasks/{task_id}/result.mid" in keys
    assert all(f"deploy/audio/{s}/original" in keys for s in stems)
    assert not list((cluster.root / "api-a").rglob("original"))
    poll(b, "/health", key, lambda h: h["workers"] == 2)  # the Celery workers answer the nodes' pings


def _running_on(cluster: Cluster, task_id: str) -> int:
    """The pid of the worker process running the task, once it is transcribing."""
    from stemscribe.jobs.store import SqlJobStore

    store = SqlJobStore(cluster.env["STEMSCRIBE_DATABASE_URL"])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            t = store.get_task(task_id, None)
            if t is not None and t.stage == "transcribing" and t.worker_id:
                return int(t.worker_id.split(":")[1].split("/")[0])
            time.sleep(0.05)
    finally:
        store.close()
    raise AssertionError(f"task {task_id} never started transcribing")


def test_the_rate_limit_is_shared_by_api_nodes(tmp_path: Any, redis_url: str, prefix: str) -> None:
    from fastapi.testclient import TestClient

    from stemscribe.service import create_app
    from stemscribe.settings import Settings

    clients = []
    for name in ("a", "b"):
        settings = Settings(
            data_dir=tmp_path / name,
            workers=0,
            secret_key="s",
            redis_url=redis_url,
            queue_prefix=prefix,
            rate_limit_per_s=0.05,  # one token per 20 s: none comes back during the test
            rate_limit_burst=3,
        )
        client = TestClient(create_app(settings), client=("127.0.0.1", 50000))
        client.__enter__()
        clients.append(client)
    try:
        codes = [clients[i % 2].get("/v1/transcriptions").status_code for i in range(4)]
        assert codes == [200, 200, 200, 429], codes  # one bucket, counted by both nodes
        assert int(clients[0].get("/v1/transcriptions").headers["retry-after"]) >= 1
    finally:
        for client in clients:
            client.__exit__(None, None, None)


def test_kill9_of_a_worker_mid_transcription(
    cluster: Cluster, nodes: tuple[str, str], receiver: Receiver, bucket: str
) -> None:
    """The job completes once, on the other worker: one result, one callback. (Last in the module:
    it leaves one worker.)"""
    a, b = nodes
    key, secret = cluster.keys_create("k9")
    audio_id = upload(a, key, seconds=4.0)
    r = http.post(
        f"{a}/v1/transcriptions",
        json={"audio_id": audio_id, "callback_url": receiver.url + "/cb"},
        headers=bearer(key),
    )
    task_id = r.json()["id"]
    victim = holder_of(_running_on(cluster, task_id), cluster.workers)
    time.sleep(0.5)
    cluster.kill9(victim)

    done = poll(b, f"/v1/transcriptions/{task_id}", key, lambda t: t["state"] in ("succeeded", "failed"))
    assert done["state"] == "succeeded", done
    (cb,) = receiver.wait("/cb", 1)
    verify(secret, cb)
    assert body(cb)["id"] == task_id
    time.sleep(2.0)  # nothing more arrives
    assert len(receiver.on("/cb")) == 1
    assert s3_keys(bucket, f"deploy/tasks/{task_id}/") == [
        f"deploy/tasks/{task_id}/{n}" for n in ("result.json", "result.mid", "result.quantized.mid")
    ]
    from stemscribe.jobs.store import SqlJobStore

    store = SqlJobStore(cluster.env["STEMSCRIBE_DATABASE_URL"])
    task = store.get_task(task_id, None)
    store.close()
    assert task is not None and task.attempts == 2  # started on the victim, finished on the other
