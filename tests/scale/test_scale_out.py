"""The service scaled out (issue #17): two API nodes and Celery workers as real processes, on
PostgreSQL, RabbitMQ and moto's S3 server; nothing shared but what the environment names."""

from __future__ import annotations

import time
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from tests.conftest import postgres_schema

from .conftest import Cluster, Receiver, bearer, body, holder_of, http, poll, s3_keys, song, upload

pytestmark = pytest.mark.services

SLOW = 4.0
"""Seconds the workers' fake spends on audio longer than 3 s (the kill test's)."""


@pytest.fixture(scope="module")
def nodes(cluster: Cluster) -> tuple[str, str]:
    """Two API nodes and two workers (each its own process and data dir), for the whole module."""
    a, b = cluster.api("api-a"), cluster.api("api-b")
    cluster.workers = cluster.start_workers(["worker-1", "worker-2"], delay=SLOW)
    return a, b


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


def _running_on(cluster: Cluster, task_id: str, attempt: int = 1) -> int:
    """The pid of the worker process running the task's `attempt`-th start, once it is transcribing."""
    from stemscribe.jobs.store import SqlJobStore

    store = SqlJobStore(cluster.env["STEMSCRIBE_DATABASE_URL"])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            t = store.get_task(task_id, None)
            if t is not None and t.stage == "transcribing" and t.worker_id and t.attempts == attempt:
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


def test_a_key_created_or_revoked_anywhere_counts_on_every_node_at_once(
    tmp_path: Any, redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each node caches key lookups for `STEMSCRIBE_KEY_CACHE_S` (here 300 s, so that only the shared
    epoch can end them): `stemscribe keys create` and `keys revoke` take effect on both nodes at
    their next request."""
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from stemscribe.cli import app as cli
    from stemscribe.cli import register_commands
    from stemscribe.service import create_app
    from stemscribe.settings import Settings

    def node(name: str) -> TestClient:
        settings = Settings(
            data_dir=tmp_path / name,
            database_url=pg_url,
            redis_url=redis_url,
            queue_prefix=prefix,
            workers=0,
            secret_key="s",
            rate_limit_per_s=0,
            key_cache_s=300.0,
        )
        client = TestClient(create_app(settings), client=("127.0.0.1", 50000))
        client.__enter__()
        return client

    def stemscribe(*args: str) -> str:
        for name, value in {
            "STEMSCRIBE_DATA_DIR": str(tmp_path / "cli"),
            "STEMSCRIBE_DATABASE_URL": pg_url,
            "STEMSCRIBE_REDIS_URL": redis_url,
            "STEMSCRIBE_QUEUE_PREFIX": prefix,
        }.items():
            monkeypatch.setenv(name, value)
        register_commands()
        result = CliRunner().invoke(cli, list(args))
        assert result.exit_code == 0, result.output
        return str(result.stdout)

    schema = postgres_schema("stemscribe_epoch_")  # a database of its own: no key in it yet
    pg_url = schema.__enter__()
    prefix += "epoch"
    nodes = [node("a"), node("b")]
    try:
        # no key yet: loopback callers without one are `local` on both nodes (and it is cached)
        assert [n.get("/v1/transcriptions").status_code for n in nodes] == [200, 200]
        key = stemscribe("keys", "create", "--name", "epoch").split()[0]
        assert [n.get("/v1/transcriptions").status_code for n in nodes] == [401, 401]  # no_token, at once
        bearer_key = {"authorization": f"Bearer {key}"}
        assert [n.get("/v1/transcriptions", headers=bearer_key).status_code for n in nodes] == [200, 200]
        stemscribe("keys", "revoke", "epoch")
        answers = [n.get("/v1/transcriptions", headers=bearer_key) for n in nodes]
        assert [a.status_code for a in answers] == [403, 403], [a.text for a in answers]
    finally:
        for n in nodes:
            n.__exit__(None, None, None)
        schema.__exit__(None, None, None)


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


def test_a_job_whose_worker_dies_on_every_attempt_fails_after_the_cap(
    cluster: Cluster, nodes: tuple[str, str], receiver: Receiver
) -> None:
    """`kill -9` of the worker running the job, on each of its STEMSCRIBE_JOB_ATTEMPTS (3) starts:
    the next worker that gets its message fails it `worker_died`, with one failure callback. (After
    the kill test: it starts each replacement worker once the last one is killed.)"""
    from stemscribe.jobs.store import SqlJobStore

    a, b = nodes
    key, secret = cluster.keys_create("poison")
    audio_id = upload(a, key, seconds=4.0)
    r = http.post(
        f"{a}/v1/transcriptions",
        json={"audio_id": audio_id, "callback_url": receiver.url + "/poison"},
        headers=bearer(key),
    )
    task_id = r.json()["id"]
    store = SqlJobStore(cluster.env["STEMSCRIBE_DATABASE_URL"])
    try:
        for attempt in (1, 2, 3):
            victim = holder_of(_running_on(cluster, task_id, attempt), cluster.workers)
            task = store.get_task(task_id, None)
            assert task is not None and task.attempts == attempt and task.state.value == "running"
            cluster.kill9(victim)
            if not cluster.workers:
                cluster.workers.append(cluster.worker(f"worker-poison-{attempt}", delay=SLOW))
    finally:
        store.close()

    done = poll(b, f"/v1/transcriptions/{task_id}", key, lambda t: t["state"] in ("succeeded", "failed"))
    assert done["state"] == "failed" and done["error"]["code"] == "worker_died", done
    assert "3 times" in done["error"]["message"]
    (cb,) = receiver.wait("/poison", 1)
    verify(secret, cb)
    assert body(cb)["id"] == task_id and body(cb)["state"] == "failed"
    assert body(cb)["error"]["code"] == "worker_died"
    store = SqlJobStore(cluster.env["STEMSCRIBE_DATABASE_URL"])
    try:
        (delivery,) = store.deliveries_for_task(task_id)
        assert delivery.state.value == "delivered" and delivery.attempts == 1
        assert store.get_task(task_id, None).attempts == 3  # type: ignore[union-attr]
    finally:
        store.close()
    assert len(receiver.on("/poison")) == 1
