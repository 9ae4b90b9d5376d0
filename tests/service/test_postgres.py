"""The job store and the service on PostgreSQL (the local server at 127.0.0.1:5432, database `test`)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = pytest.mark.services

PG_DSN = os.environ.get("STEMSCRIBE_TEST_PG", "host=127.0.0.1 port=5432 dbname=test user=postgres")


@pytest.fixture
def pg_url() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")
    try:
        admin = psycopg.connect(PG_DSN, connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable ({PG_DSN}): {exc}")
    schema = f"stemscribe_test_{secrets.token_hex(4)}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    params = dict(p.split("=", 1) for p in PG_DSN.split())
    url = (
        f"postgresql+psycopg://{params.get('user', 'postgres')}@{params.get('host', '127.0.0.1')}:"
        f"{params.get('port', '5432')}/{params.get('dbname', 'test')}?options=-csearch_path%3D{schema}"
    )
    try:
        yield url
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


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
