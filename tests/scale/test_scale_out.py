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


def song(seconds: float = 2.0, sr: int = 16000) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * 220.0 * t) + 0.1 * np.sin(2 * np.pi * 330.0 * t)
    y[:: sr // 4] += 0.5  # clicks, so a harmonic/percussive split has both parts
    buf = io.BytesIO()
    sf.write(buf, y.astype(np.float32), sr, format="WAV")
    return buf.getvalue()


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def upload(url: str, key: str) -> str:
    r = httpx.post(
        f"{url}/v1/uploads", files={"file": ("song.wav", song(), "audio/wav")}, headers=bearer(key)
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def poll(url: str, path: str, key: str, done: Any, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = httpx.get(url + path, headers=bearer(key), timeout=10).json()
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
    cluster: Cluster, receiver: Receiver, bucket: str
) -> None:
    a, b = cluster.api("api-a"), cluster.api("api-b")
    cluster.worker("worker-1")
    cluster.worker("worker-2")
    key, secret = cluster.keys_create("reseller")  # written once, to the shared database

    # native: submit on A, poll on B; the first callback attempt fails, the retry has the same id
    audio_id = upload(a, key)
    receiver.statuses = [500]
    r = httpx.post(
        f"{a}/v1/transcriptions",
        json={"audio_id": audio_id, "callback_url": receiver.url + "/native"},
        headers=bearer(key),
    )
    assert r.status_code in (200, 201, 202), r.text
    task_id = r.json()["id"]
    done = poll(b, f"/v1/transcriptions/{task_id}", key, lambda t: t["state"] in ("succeeded", "failed"))
    assert done["state"] == "succeeded", done
    assert done["result"]["instruments"][0]["notes"], done
    midi_a = httpx.get(f"{a}/v1/transcriptions/{task_id}.mid", headers=bearer(key))
    midi_b = httpx.get(f"{b}/v1/transcriptions/{task_id}.mid", headers=bearer(key))
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
        got = httpx.get(on_node(audio_link, node))
        assert got.status_code == 200 and got.content == song()
    answer = httpx.post(f"{b}/api/v1/suno/midi", json={"clip_id": audio_id}, headers=bearer(key), timeout=60)
    assert answer.json()["code"] == 200, answer.text
    midi_url = answer.json()["data"]["midi_url"]
    for node in (a, b):
        got = httpx.get(on_node(midi_url, node))
        assert got.status_code == 200 and got.content.startswith(b"MThd")

    # AceData's synchronous call on B for the upload made on A
    sync = httpx.post(f"{b}/suno/midi", json={"audio_id": audio_id}, headers=bearer(key), timeout=90)
    assert sync.status_code == 200 and sync.json()["data"][0]["state"] == "complete", sync.text

    # kie: a separation (its own queue) on B, its stems' MIDI on A, both called back
    r = httpx.post(
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
    assert httpx.get(on_node(rec["response"]["drumsUrl"], b)).status_code == 200
    (sep_cb,) = receiver.wait("/sep", 1)
    assert body(sep_cb)["data"]["task_id"] == sep_id
    r = httpx.post(
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
    assert httpx.get(f"{b}/health").json()["workers"] == 2


def _running_on(cluster: Cluster, url: str, key: str, task_id: str) -> int:
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


def test_kill9_of_a_worker_mid_transcription(cluster: Cluster, receiver: Receiver, bucket: str) -> None:
    """The job completes once, on the other worker: one result, one callback."""
    a = cluster.api("api")
    workers = [cluster.worker("worker-1", delay=4.0), cluster.worker("worker-2", delay=4.0)]
    key, secret = cluster.keys_create("k9")
    audio_id = upload(a, key)
    r = httpx.post(
        f"{a}/v1/transcriptions",
        json={"audio_id": audio_id, "callback_url": receiver.url + "/cb"},
        headers=bearer(key),
    )
    task_id = r.json()["id"]
    victim = holder_of(_running_on(cluster, a, key, task_id), workers)
    time.sleep(0.5)
    cluster.kill9(victim)

    done = poll(a, f"/v1/transcriptions/{task_id}", key, lambda t: t["state"] in ("succeeded", "failed"))
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


def test_a_job_whose_workers_keep_dying_fails_with_its_callback(cluster: Cluster, receiver: Receiver) -> None:
    cluster.env["STEMSCRIBE_JOB_ATTEMPTS"] = "1"
    a = cluster.api("api")
    workers = [cluster.worker("worker-1", delay=4.0), cluster.worker("worker-2", delay=4.0)]
    key, _ = cluster.keys_create("cap")
    audio_id = upload(a, key)
    r = httpx.post(
        f"{a}/v1/transcriptions",
        json={"audio_id": audio_id, "callback_url": receiver.url + "/cb"},
        headers=bearer(key),
    )
    task_id = r.json()["id"]
    cluster.kill9(holder_of(_running_on(cluster, a, key, task_id), workers))
    done = poll(a, f"/v1/transcriptions/{task_id}", key, lambda t: t["state"] in ("succeeded", "failed"))
    assert done["state"] == "failed" and done["error"]["code"] == "worker_died", done
    (cb,) = receiver.wait("/cb", 1)
    assert body(cb)["state"] == "failed"


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
            rate_limit_per_s=0.5,
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
