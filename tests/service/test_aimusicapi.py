"""aimusicapi's dialect: seed 001's curl request replayed with only the host changed."""

from __future__ import annotations

import io
from typing import Any

import mido
from fastapi.testclient import TestClient

from stemscribe.errors import AudioError

from .conftest import FakeTranscriber, upload


def test_seed_001_curl_request(client: TestClient) -> None:
    _, key = client.app.state.ctx.store.create_key("curl")  # type: ignore[attr-defined]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    clip = client.post(
        "/api/v1/suno/upload", json={"url": "https://music.example/song.wav"}, headers=headers
    ).json()
    assert clip["code"] == 200 and clip["message"] == "success" and clip["clip_id"]
    # curl --location --request POST '.../api/v1/suno/midi' --data-raw '{"clip_id": ...}'
    raw = '{\n    "clip_id":"' + clip["clip_id"] + '"\n}'
    r = client.post("/api/v1/suno/midi", content=raw.encode(), headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["code"] == 200 and set(body["data"]) == {"midi_url", "instruments"}
    notes = body["data"]["instruments"][0]["notes"]
    assert all(set(n) >= {"end", "pitch", "start", "velocity"} for n in notes)
    mid = client.get(body["data"]["midi_url"])  # no token: a signed link
    assert mid.status_code == 200
    assert len(mido.MidiFile(file=io.BytesIO(mid.content)).tracks) >= 2
    # The same request again answers the same task (no second transcription).
    again = client.post("/api/v1/suno/midi", content=raw.encode(), headers=headers).json()
    assert again["data"]["midi_url"] == body["data"]["midi_url"]
    listed = client.get(f"/api/v1/suno/task/{clip['clip_id']}", headers=headers).json()
    assert listed["code"] == 200 and listed["data"][0]["clip_id"] == clip["clip_id"]
    assert listed["data"][0]["state"] == "succeeded"
    # A tampered link is refused.
    assert client.get(body["data"]["midi_url"].replace("s=", "s=0")).status_code == 403


def test_in_progress_answer_then_result(make_client: Any, settings: Any) -> None:
    slow = FakeTranscriber()
    import threading

    slow.gate = threading.Event()
    client = make_client(settings.model_copy(update={"aimusic_wait_s": 0.2}), transcriber=slow)
    clip_id = upload(client)["id"]
    first = client.post("/api/v1/suno/midi", json={"clip_id": clip_id}).json()
    assert (
        first["code"] == 202
        and first["data"]["midi_url"] is None
        and first["data"]["state"] in ("pending", "running")
    )
    slow.gate.set()
    for _ in range(100):
        body = client.post("/api/v1/suno/midi", json={"clip_id": clip_id}).json()
        if body["code"] == 200:
            break
    assert body["code"] == 200 and body["data"]["instruments"]
    assert len(slow.calls) == 1


def test_errors_are_code_and_message(make_client: Any) -> None:
    client = make_client(transcriber=FakeTranscriber(fail=AudioError("audio is silent")))
    r = client.post("/api/v1/suno/midi", json={})
    assert r.status_code == 400 and r.json()["code"] == 400 and "clip_id" in r.json()["message"]
    r = client.post("/api/v1/suno/midi", json={"clip_id": "29fc9d9e-a550-47d9-bfd2-6640a4025acc"})
    assert r.status_code == 404 and r.json() == {"code": 404, "message": r.json()["message"]}
    clip_id = upload(client)["id"]
    r = client.post("/api/v1/suno/midi", json={"clip_id": clip_id})
    assert r.status_code == 400 and r.json() == {"code": 400, "message": "audio is silent"}
    client.app.state.ctx.store.create_key("k")
    r = client.post("/api/v1/suno/midi", json={"clip_id": clip_id})
    assert r.status_code == 401 and r.json()["code"] == 401
