"""The job store and the service on PostgreSQL (the local server at 127.0.0.1:5432, database `test`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import PG_DSN, postgres_schema

pytestmark = pytest.mark.services


@pytest.fixture
def pg_url() -> Iterator[str]:
    with postgres_schema("stemscribe_test_") as url:
        yield url


def test_service_on_postgres(pg_url: str, make_client: Any, settings: Any) -> None:
    from .conftest import upload, wait_task

    client = make_client(settings.model_copy(update={"database_url": pg_url}))
    store = client.app.state.ctx.store
    assert store.engine.dialect.name == "postgresql"
    up = upload(client)
    task = client.post("/v1/transcriptions", json={"audio_id": up["id"]}).json()
    assert wait_task(client, task["id"])["state"] == "succeeded"
    _, key = store.create_key("pg")
    assert store.principal_for_key(key) is not None and store.keys_exist()
    assert store.count_tasks() == {"succeeded": 1}


def test_hostile_lengths_and_nul_bytes_on_postgres(pg_url: str, make_client: Any, settings: Any) -> None:
    """Issue #14 row 3: these were 500 DataError on PostgreSQL; now 4xx (or a cleaned name), as on SQLite."""
    from .conftest import tone_wav

    client = make_client(settings.model_copy(update={"database_url": pg_url}))
    r = client.post("/v1/uploads", files={"file": ("x" * 450 + ".wav", tone_wav(1.0), "audio/" + "y" * 120)})
    assert r.status_code == 201 and len(r.json()["filename"]) <= 200, r.text
    r = client.post(
        "/api/file-stream-upload",
        files={"file": ("a.wav", tone_wav(1.0), "audio/wav")},
        data={"fileName": "k" * 500 + ".wav"},
    )
    assert r.status_code == 200, r.text
    for method, path, kwargs in (
        ("GET", "/v1/transcriptions/%00abc", {}),
        ("GET", "/api/v1/suno/task/%00x", {}),
        ("GET", "/api/v1/midi/record-info?taskId=%00", {}),
        ("GET", "/api/v1/vocal-removal/record-info?taskId=%00", {}),
        ("POST", "/suno/tasks", {"json": {"id": "\u0000abc", "action": "retrieve"}}),
        ("POST", "/suno/midi", {"json": {"audio_id": "a" * 41}}),
    ):
        r = client.request(method, path, **kwargs)
        assert r.status_code == 404, (path, r.status_code, r.text)
    r = client.post("/suno/tasks", json={"ids": ["\u0000", "b" * 300], "action": "retrieve_batch"})
    assert r.status_code == 200 and r.json()["count"] == 0


def test_lock_timeout_on_postgres_is_503(pg_url: str, live_server: Any, settings: Any, fake: Any) -> None:
    """Issue #14 row 4 on PostgreSQL: a write blocked by a table lock answers 503 with Retry-After
    after `db_busy_timeout_s`, and `/health` keeps answering meanwhile."""
    import threading
    import time

    import httpx
    import psycopg

    from .conftest import tone_wav

    base = live_server(settings.model_copy(update={"database_url": pg_url, "db_busy_timeout_s": 1.5}), fake)
    up = httpx.post(f"{base}/v1/uploads", files={"file": ("a.wav", tone_wav(1.0), "audio/wav")}).json()
    schema = pg_url.split("search_path%3D", 1)[1]
    locker = psycopg.connect(PG_DSN, connect_timeout=3)
    locker.execute(f'LOCK TABLE "{schema}".tasks IN EXCLUSIVE MODE')  # reads pass, writes wait
    answer: dict[str, Any] = {}
    writer = threading.Thread(
        target=lambda: answer.setdefault(
            "r", httpx.post(f"{base}/v1/transcriptions", json={"audio_id": up["id"]}, timeout=30)
        )
    )
    try:
        writer.start()
        time.sleep(0.3)
        started = time.monotonic()
        assert httpx.get(f"{base}/health", timeout=5).status_code == 200
        assert time.monotonic() - started < 1.0
        writer.join(20)
    finally:
        locker.rollback()
        locker.close()
    r = answer["r"]
    assert r.status_code == 503 and r.headers["retry-after"] and r.json()["error"]["code"] == "busy", r.text
