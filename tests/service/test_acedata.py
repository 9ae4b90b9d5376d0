"""AceData's dialect: seed 000's request replayed with only the host changed, callbacks, errors (seed 004)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from standardwebhooks import Webhook

from stemscribe.errors import ModelError
from stemscribe.settings import Settings

from .conftest import FakeTranscriber, Receiver, upload


def seed_headers(token: str) -> dict[str, str]:
    # Seed 000's headers, verbatim but for the token.
    return {
        "accept": "application/json",
        "authorization": f"Bearer {token}",
        "content-type": "application/json",
    }


@pytest.fixture
def keyed(client: TestClient) -> tuple[TestClient, str, Any]:
    principal, key = client.app.state.ctx.store.create_key("seed")  # type: ignore[attr-defined]
    return client, key, principal


def is_uuid(s: str) -> bool:
    return str(uuid.UUID(s)) == s


def test_seed_000_request_answers_the_seed_shape(keyed: tuple[TestClient, str, Any]) -> None:
    client, key, _ = keyed
    audio_id = upload(client, headers={"authorization": f"Bearer {key}"})["id"]
    url = "/suno/midi"  # seed: https://api.acedata.cloud/suno/midi
    payload = {"audio_id": audio_id}
    response = client.post(url, json=payload, headers=seed_headers(key))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"success", "task_id", "trace_id", "data"}
    assert body["success"] is True and is_uuid(body["task_id"]) and is_uuid(body["trace_id"])
    assert isinstance(body["data"], list) and len(body["data"]) == 1
    assert body["data"][0]["state"] == "complete"
    inst = body["data"][0]["instruments"][0]
    assert inst["name"] == "Acoustic Grand Piano"
    for note in inst["notes"]:
        assert set(note) >= {"pitch", "start", "end", "velocity"}
        assert (
            isinstance(note["pitch"], int)
            and isinstance(note["start"], float)
            and isinstance(note["end"], float)
        )
        assert 0 <= note["velocity"] <= 1 and note["end"] > note["start"]

    # POST /suno/tasks looks it up, with the original request and the same answer.
    r = client.post(
        "/suno/tasks", json={"id": body["task_id"], "action": "retrieve"}, headers=seed_headers(key)
    )
    task = r.json()
    assert task["id"] == body["task_id"] and task["trace_id"] == body["trace_id"]
    assert task["request"] == payload and task["response"] == body
    assert task["finished_at"] >= task["started_at"] >= task["created_at"] and task["elapsed"] >= 0
    r = client.post(
        "/suno/tasks",
        json={"ids": [body["task_id"], "missing"], "action": "retrieve_batch"},
        headers=seed_headers(key),
    )
    assert r.json()["count"] == 1 and r.json()["items"][0]["id"] == body["task_id"]


def test_callback_answers_task_id_then_posts_the_signed_result(
    keyed: tuple[TestClient, str, Any], receiver: Receiver
) -> None:
    client, key, principal = keyed
    audio_id = upload(client, headers={"authorization": f"Bearer {key}"})["id"]
    r = client.post(
        "/suno/midi",
        json={"audio_id": audio_id, "callback_url": "https://hooks.example/ace"},
        headers=seed_headers(key),
    )
    assert r.status_code == 200 and set(r.json()) == {"task_id"}
    task_id = r.json()["task_id"]
    (req,) = receiver.wait(1)
    assert str(req.url) == "https://hooks.example/ace"
    Webhook(principal.webhook_secret).verify(req.content, dict(req.headers))
    body = receiver.json()
    assert body["success"] is True and body["task_id"] == task_id
    assert body["data"][0]["state"] == "complete" and body["data"][0]["instruments"]
    # The callback body equals what the synchronous answer would have been.
    retrieved = client.post(
        "/suno/tasks", json={"id": task_id, "action": "retrieve"}, headers=seed_headers(key)
    ).json()
    assert retrieved["response"] == body


def test_upload_by_url_and_all_stems(keyed: tuple[TestClient, str, Any], no_demucs: None) -> None:
    client, key, _ = keyed
    h = seed_headers(key)
    r = client.post("/suno/upload", json={"audio_url": "https://music.example/song.wav"}, headers=h)
    assert r.status_code == 200, r.text
    up = r.json()
    assert up["success"] is True and is_uuid(up["task_id"])
    data = up["data"]
    assert data["title"] == "song" and abs(data["duration"] - 2.0) < 0.01
    assert client.get(data["audio_url"]).status_code == 200  # signed link, no token

    r = client.post("/suno/audios", json={"action": "all_stems", "audio_id": data["audio_id"]}, headers=h)
    assert r.status_code == 200, r.text
    items = r.json()["data"]
    assert {i["title"] for i in items} == {"song (Drums)", "song (Harmonic)"}
    for item in items:
        assert set(item) >= {
            "id",
            "title",
            "image_url",
            "lyric",
            "audio_url",
            "video_url",
            "created_at",
            "model",
            "state",
            "duration",
        }
        assert item["state"] == "succeeded" and item["model"] == "hpss"
        assert client.get(item["audio_url"]).headers["content-type"] == "audio/flac"
    # A stem's id is an audio_id for /suno/midi.
    drums = next(i for i in items if i["title"].endswith("(Drums)"))
    r = client.post("/suno/midi", json={"audio_id": drums["id"]}, headers=h)
    assert r.json()["success"] is True


def test_stems_without_demucs_names_the_fetch_command(
    keyed: tuple[TestClient, str, Any], no_demucs: None
) -> None:
    client, key, _ = keyed
    audio_id = upload(client, headers={"authorization": f"Bearer {key}"})["id"]
    r = client.post("/suno/audios", json={"action": "stems", "audio_id": audio_id}, headers=seed_headers(key))
    assert r.status_code == 503
    body = r.json()
    assert body["success"] is False and body["error"]["code"] == "separation_unavailable"
    assert "stemscribe models fetch" in body["error"]["message"] and body["trace_id"]


def ace_error(r: Any, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["success"] is False and body["error"]["code"] == code and is_uuid(body["trace_id"])
    return str(body["error"]["message"])


def test_error_table_of_seed_004(make_client: Any, settings: Settings) -> None:
    client = make_client()
    store = client.app.state.ctx.store
    revoked, revoked_key = store.create_key("old")
    store.revoke_key(revoked.id)
    _, key = store.create_key("ok")
    h = seed_headers(key)
    audio_id = upload(client, headers={"authorization": f"Bearer {key}"})["id"]

    assert "audio_id" in ace_error(client.post("/suno/midi", json={}, headers=h), 400, "bad_request")
    assert "not implemented" in ace_error(
        client.post("/suno/audios", json={"action": "generate", "prompt": "x"}, headers=h),
        400,
        "api_not_implemented",
    )
    ace_error(client.post("/suno/midi", json={"audio_id": audio_id}), 400, "no_token")
    ace_error(
        client.post("/suno/midi", json={"audio_id": audio_id}, headers=seed_headers("sk_nope")),
        401,
        "invalid_token",
    )
    ace_error(
        client.post("/suno/midi", json={"audio_id": audio_id}, headers=seed_headers(revoked_key)),
        403,
        "forbidden",
    )
    ace_error(
        client.post("/suno/midi", json={"audio_id": "c65e6ffd-ead3-4926-9c8c-a42ce202946b"}, headers=h),
        404,
        "not_found",
    )
    ace_error(
        client.post("/suno/tasks", json={"id": "nope", "action": "retrieve"}, headers=h), 404, "not_found"
    )
    ace_error(
        client.post("/suno/upload", json={"audio_url": "https://music.example/big.wav"}, headers=h),
        413,
        "too_large",
    )
    ace_error(
        client.post("/suno/upload", json={"audio_url": "https://music.example/text"}, headers=h),
        400,
        "bad_request",
    )

    limited = make_client(settings.model_copy(update={"rate_limit_per_s": 0.1, "rate_limit_burst": 1}))
    lkey = limited.app.state.ctx.store.create_key("l")[1]
    limited.post("/suno/tasks", json={"id": "x"}, headers=seed_headers(lkey))
    ace_error(
        limited.post("/suno/tasks", json={"id": "x"}, headers=seed_headers(lkey)), 429, "too_many_requests"
    )

    failing = make_client(transcriber=FakeTranscriber(fail=ModelError("model exploded")))
    fkey = failing.app.state.ctx.store.create_key("f")[1]
    fid = upload(failing, headers={"authorization": f"Bearer {fkey}"})["id"]
    r = failing.post("/suno/midi", json={"audio_id": fid}, headers=seed_headers(fkey))
    assert "model exploded" in ace_error(r, 500, "api_error") and r.json()["task_id"]

    slow = make_client(
        settings.model_copy(update={"sync_wait_s": 0.2}), transcriber=FakeTranscriber(delay=1.0)
    )
    skey = slow.app.state.ctx.store.create_key("s")[1]
    sid = upload(slow, headers={"authorization": f"Bearer {skey}"})["id"]
    r = slow.post("/suno/midi", json={"audio_id": sid}, headers=seed_headers(skey))
    assert "/suno/tasks" in ace_error(r, 504, "timeout") and r.json()["task_id"]
