"""RabbitMQ and PostgreSQL restarted while jobs are queued and running (issue #17): every job
completes, exactly once, with one callback.

Both servers are private to this module (`tests.servers`: their own ports and directories), so
stopping them disturbs no other test on the machine; one API node and two Celery workers run as real
processes on them, with moto's S3 server for the files.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.servers import PrivatePostgres, PrivateRabbit, ServerUnavailable

from .conftest import AWS_ENV, Cluster, Receiver, bearer, body, http, upload

pytestmark = [pytest.mark.services, pytest.mark.restarts]

SLOW = 4.0
"""Seconds each job's fake transcription takes (audio longer than 3 s)."""
JOBS = 5
"""Jobs per restart: two running (one per worker) and three queued when the server stops."""


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivatePostgres]:
    pytest.importorskip("psycopg", reason="psycopg is not installed")
    try:
        pg = PrivatePostgres(tmp_path_factory.mktemp("postgres"))
        pg.start()
    except ServerUnavailable as exc:
        pytest.skip(f"no private PostgreSQL: {exc}")
    yield pg
    pg.close()


@pytest.fixture(scope="module")
def rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRabbit]:
    pytest.importorskip("celery", reason="the scale extra (celery) is not installed")
    try:
        node = PrivateRabbit(tmp_path_factory.mktemp("rabbit"))
        node.start()
    except ServerUnavailable as exc:
        pytest.skip(f"no private RabbitMQ: {exc}")
    yield node
    node.close()


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory,
    postgres: PrivatePostgres,
    rabbit: PrivateRabbit,
    bucket: str,
    s3_endpoint: str,
) -> Iterator[tuple[Cluster, str]]:
    """One API node and two workers on the private servers: (cluster, the node's URL)."""
    env = {
        **AWS_ENV,
        "AWS_ENDPOINT_URL": s3_endpoint,
        "STEMSCRIBE_DATABASE_URL": postgres.url,
        "STEMSCRIBE_BROKER_URL": rabbit.url,
        "STEMSCRIBE_STORAGE_URL": f"s3://{bucket}/restarts",
        "STEMSCRIBE_SECRET_KEY": "restart-test-secret",
        "STEMSCRIBE_ALLOW_PRIVATE_URLS": "1",
        "STEMSCRIBE_RATE_LIMIT_PER_S": "0",
        "STEMSCRIBE_WEBHOOK_BACKOFF_S": "0.3",
        "STEMSCRIBE_WORKER_LEASE_S": "30",
    }
    cluster = Cluster(tmp_path_factory.mktemp("restarts"), env)
    try:
        node = cluster.api("api")
        cluster.workers = cluster.start_workers(["worker-1", "worker-2"], delay=SLOW)
        yield cluster, node
    finally:
        cluster.close()


def _store(cluster: Cluster) -> Any:
    from stemscribe.jobs.store import SqlJobStore

    return SqlJobStore(cluster.env["STEMSCRIBE_DATABASE_URL"])


def _submit(node: str, key: str, receiver: Receiver, path: str, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        audio_id = upload(node, key, seconds=5.0)
        r = http.post(
            f"{node}/v1/transcriptions",
            json={"audio_id": audio_id, "callback_url": receiver.url + path},
            headers=bearer(key),
        )
        assert r.status_code == 202, r.text
        ids.append(str(r.json()["id"]))
    return ids


def _wait_running(cluster: Cluster, task_ids: list[str], count: int) -> None:
    """Until `count` of the tasks are being transcribed (and the rest are queued)."""
    store = _store(cluster)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            tasks = [store.get_task(t, None) for t in task_ids]
            if sum(t is not None and t.stage == "transcribing" for t in tasks) >= count:
                return
            time.sleep(0.1)
    finally:
        store.close()
    raise AssertionError(f"{count} of the tasks never ran at once")


def _wait_done(node: str, key: str, task_ids: list[str], timeout: float = 300.0) -> list[dict[str, Any]]:
    """Poll until every task finished; the API node's errors while a server restarts are waited out."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            answers = [http.get(f"{node}/v1/transcriptions/{t}", headers=bearer(key)) for t in task_ids]
        except httpx.HTTPError:
            time.sleep(0.5)
            continue
        if all(a.status_code == 200 for a in answers):
            last = {t: a.json() for t, a in zip(task_ids, answers, strict=True)}
            if all(v["state"] in ("succeeded", "failed") for v in last.values()):
                return list(last.values())
        time.sleep(0.2)
    raise AssertionError(f"not all finished: {[(t, v.get('state')) for t, v in last.items()]}")


def _check_exactly_once(cluster: Cluster, bucket: str, receiver: Receiver, path: str, ids: list[str]) -> None:
    """Every task succeeded on its first start, wrote its three files once, and called back once."""
    import boto3

    store = _store(cluster)
    try:
        for task_id in ids:
            task = store.get_task(task_id, None)
            assert task is not None and task.state.value == "succeeded", task
            assert task.attempts == 1, (task_id, task.attempts)
            (delivery,) = store.deliveries_for_task(task_id)
            assert delivery.state.value == "delivered" and delivery.attempts == 1, delivery
    finally:
        store.close()
    s3 = boto3.client("s3", endpoint_url=cluster.env["AWS_ENDPOINT_URL"])
    for task_id in ids:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"restarts/tasks/{task_id}/")
        assert sorted(o["Key"].rsplit("/", 1)[1] for o in listed.get("Contents", [])) == [
            "result.json",
            "result.mid",
            "result.quantized.mid",
        ]
    calls = receiver.wait(path, len(ids))
    per_task = Counter(body(c)["id"] for c in calls)
    assert per_task == Counter(ids), per_task
    assert len({c[1]["webhook-id"] for c in calls}) == len(ids)


def _one_more_job(node: str, key: str, receiver: Receiver) -> None:
    """The API node and the workers work on after the restart: a new job runs and calls back."""
    (task_id,) = _submit(node, key, receiver, "/after", 1)
    (done,) = _wait_done(node, key, [task_id])
    assert done["state"] == "succeeded", done
    (call,) = receiver.wait("/after", 1)
    assert body(call)["id"] == task_id
    receiver.requests = [r for r in receiver.requests if r[0] != "/after"]


def test_rabbitmq_restart_with_jobs_queued_and_running(
    deployment: tuple[Cluster, str], rabbit: PrivateRabbit, receiver: Receiver, bucket: str
) -> None:
    cluster, node = deployment
    key, _ = cluster.keys_create("rabbit-restart")
    ids = _submit(node, key, receiver, "/rabbit", JOBS)
    _wait_running(cluster, ids, 2)
    rabbit.stop()  # the running jobs finish meanwhile; their acks, and the queued messages, wait
    audio_id = upload(node, key, seconds=1.0)  # the database and the bucket still take uploads
    refused = http.post(f"{node}/v1/transcriptions", json={"audio_id": audio_id}, headers=bearer(key))
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "busy", refused.text
    rabbit.start()
    done = _wait_done(node, key, ids)
    assert [d["state"] for d in done] == ["succeeded"] * JOBS, done
    _check_exactly_once(cluster, bucket, receiver, "/rabbit", ids)
    _one_more_job(node, key, receiver)
    assert Counter(body(c)["id"] for c in receiver.on("/rabbit")) == Counter(ids)
    listed = http.get(f"{node}/v1/transcriptions?limit=100", headers=bearer(key)).json()
    assert listed["count"] == JOBS + 1  # the refused submission left no task behind


def test_postgresql_restart_with_jobs_queued_and_running(
    deployment: tuple[Cluster, str], postgres: PrivatePostgres, receiver: Receiver, bucket: str
) -> None:
    cluster, node = deployment
    key, _ = cluster.keys_create("postgres-restart")
    ids = _submit(node, key, receiver, "/postgres", JOBS)
    _wait_running(cluster, ids, 2)
    postgres.stop("fast")  # every connection is cut
    # Down for longer than a job: the two running jobs finish while it is down (their outcome must
    # wait for it), and the workers then take queued messages that cannot be claimed.
    time.sleep(SLOW + 2.0)
    postgres.start()
    done = _wait_done(node, key, ids)
    assert [d["state"] for d in done] == ["succeeded"] * JOBS, done
    _check_exactly_once(cluster, bucket, receiver, "/postgres", ids)
    _one_more_job(node, key, receiver)
    assert Counter(body(c)["id"] for c in receiver.on("/postgres")) == Counter(ids)
