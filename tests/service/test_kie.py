"""kie.ai's dialect: seed 002's request body, seed 003's callback, separation, record-info."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from fastapi.testclient import TestClient
from standardwebhooks import Webhook

from stemscribe.errors import ModelError

from .conftest import FakeTranscriber, Receiver, upload


def kie_verify(secret: str, task_id: str, headers: Any) -> None:
    ts = headers["x-webhook-timestamp"]
    expected = base64.b64encode(
        hmac.new(secret.encode(), f"{task_id}.{ts}".encode(), hashlib.sha256).digest()
    ).decode()
    assert hmac.compare_digest(expected, headers["x-webhook-signature"])
    assert abs(int(ts) - time.time()) < 60


def keyed(client: TestClient) -> tuple[dict[str, str], Any]:
    principal, key = client.app.state.ctx.store.create_key("kie")  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}, principal


def poll(client: TestClient, path: str, task_id: str, headers: Any, done: Any) -> dict[str, Any]:
    for _ in range(300):
        r = client.get(path, params={"taskId": task_id}, headers=headers)
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        if done(data):
            return data
        time.sleep(0.05)
    raise AssertionError(data)


def test_seed_002_body_and_seed_003_callback(client: TestClient, receiver: Receiver) -> None:
    headers, principal = keyed(client)
    audio_id = upload(client, headers=headers)["id"]
    # Seed 002's example body, with an uploaded audio's id as the taskId.
    body = {"taskId": audio_id, "callBackUrl": "https://example.callback"}
    r = client.post("/api/v1/midi/generate", json=body, headers=headers)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["code"] == 200 and answer["msg"] == "success" and set(answer["data"]) == {"taskId"}
    task_id = answer["data"]["taskId"]

    (req,) = receiver.wait(1)
    assert str(req.url) == "https://example.callback"
    Webhook(principal.webhook_secret).verify(req.content, dict(req.headers))
    kie_verify(principal.webhook_secret, task_id, req.headers)
    cb = receiver.json()
    assert set(cb) == {"task_id", "code", "msg", "data"}
    assert cb["task_id"] == task_id and cb["code"] == 200 and cb["msg"] == "success"
    assert cb["data"]["state"] == "complete"
    for inst in cb["data"]["instruments"]:
        assert isinstance(inst["name"], str)
        for n in inst["notes"]:
            assert isinstance(n["pitch"], int) and 0 <= n["pitch"] <= 127
            assert isinstance(n["start"], float) and isinstance(n["end"], float) and 0 <= n["velocity"] <= 1

    rec = poll(client, "/api/v1/midi/record-info", task_id, headers, lambda d: d["successFlag"] != 0)
    assert rec["taskId"] == task_id and rec["successFlag"] == 1 and rec["callbackUrl"] == body["callBackUrl"]
    assert rec["midiData"] == cb["data"] and rec["completeTime"] >= rec["createTime"] > 1e12
    assert rec["errorCode"] is None and rec["errorMessage"] is None
    for _ in range(100):
        rec = client.get("/api/v1/midi/record-info", params={"taskId": task_id}, headers=headers).json()[
            "data"
        ]
        if rec["callback"]["state"] == "delivered":
            break
        time.sleep(0.05)
    assert (
        rec["callback"]["state"] == "delivered" and rec["callback"]["webhook_id"] == req.headers["webhook-id"]
    )


def test_split_stem_then_midi_of_all_tracks(client: TestClient, receiver: Receiver, no_demucs: None) -> None:
    headers, principal = keyed(client)
    audio_id = upload(client, headers=headers)["id"]
    r = client.post(
        "/api/v1/vocal-removal/generate",
        json={
            "taskId": audio_id,
            "audioId": audio_id,
            "type": "split_stem",
            "callBackUrl": "https://example.callback/sep",
        },
        headers=headers,
    )
    assert r.json()["code"] == 200, r.text
    sep_id = r.json()["data"]["taskId"]
    rec = poll(
        client, "/api/v1/vocal-removal/record-info", sep_id, headers, lambda d: d["successFlag"] != "PENDING"
    )
    assert rec["successFlag"] == "SUCCESS" and rec["musicId"] == audio_id
    resp = rec["response"]
    assert {o["stem_type_group_name"] for o in resp["originData"]} == {"Drums", "Harmonic"}
    assert resp["drumsUrl"] and resp["vocalUrl"] is None
    assert client.get(resp["drumsUrl"]).status_code == 200

    (req,) = receiver.wait(1)
    kie_verify(principal.webhook_secret, sep_id, req.headers)
    cb = receiver.json()
    assert cb["code"] == 200 and cb["data"]["task_id"] == sep_id
    info = cb["data"]["vocal_separation_info"]
    assert info["drums_url"] == resp["drumsUrl"] and info["vocal_url"] is None and "woodwinds_url" in info

    r = client.post(
        "/api/v1/midi/generate",
        json={"taskId": sep_id, "callBackUrl": "https://example.callback/midi"},
        headers=headers,
    )
    midi_id = r.json()["data"]["taskId"]
    rec = poll(client, "/api/v1/midi/record-info", midi_id, headers, lambda d: d["successFlag"] != 0)
    assert rec["successFlag"] == 1 and rec["recordTaskId"] == sep_id
    assert len(rec["midiData"]["instruments"]) == 2  # one per separated track

    one = resp["originData"][0]["id"]
    r = client.post(
        "/api/v1/midi/generate",
        json={"taskId": sep_id, "audioId": one, "callBackUrl": "https://example.callback/midi"},
        headers=headers,
    )
    rec = poll(
        client,
        "/api/v1/midi/record-info",
        r.json()["data"]["taskId"],
        headers,
        lambda d: d["successFlag"] != 0,
    )
    assert rec["audioId"] == one and len(rec["midiData"]["instruments"]) == 1


def test_failure_callback_and_errors(make_client: Any, receiver: Receiver) -> None:
    client = make_client(transcriber=FakeTranscriber(fail=ModelError("no model")))
    headers, _ = keyed(client)
    audio_id = upload(client, headers=headers)["id"]
    r = client.post(
        "/api/v1/midi/generate",
        json={"taskId": audio_id, "callBackUrl": "https://cb.example/x"},
        headers=headers,
    )
    task_id = r.json()["data"]["taskId"]
    receiver.wait(1)
    assert receiver.json() == {"task_id": task_id, "code": 500, "msg": "no model", "data": None}
    rec = client.get("/api/v1/midi/record-info", params={"taskId": task_id}, headers=headers).json()["data"]
    assert rec["successFlag"] == 3 and rec["errorMessage"] == "no model"

    r = client.post("/api/v1/midi/generate", json={"taskId": audio_id}, headers=headers)
    assert (
        r.status_code == 422
        and r.json()["code"] == 422
        and "callBackUrl" in r.json()["msg"]
        and r.json()["data"] is None
    )
    r = client.post(
        "/api/v1/midi/generate", json={"taskId": "nope", "callBackUrl": "https://cb.example"}, headers=headers
    )
    assert r.status_code == 404 and r.json()["code"] == 404
    r = client.get("/api/v1/midi/record-info", params={"taskId": "nope"}, headers=headers)
    assert r.status_code == 404
    r = client.post(
        "/api/v1/midi/generate",
        json={"taskId": audio_id, "callBackUrl": "http://169.254.169.254/x"},
        headers=headers,
    )
    assert r.status_code == 400 and "metadata" in r.json()["msg"]  # refused at submit (issue #14 row 9)
    r = client.post(
        "/api/v1/midi/generate", json={"taskId": audio_id, "callBackUrl": "ftp://cb.example"}, headers=headers
    )
    assert r.status_code == 400 and r.json()["code"] == 400
    r = client.get("/api/v1/midi/record-info", params={"taskId": task_id})
    assert r.status_code == 401 and r.json()["code"] == 401


def test_file_stream_upload_gives_an_audio_id(client: TestClient) -> None:
    headers, _ = keyed(client)
    del headers["Content-Type"]
    from .conftest import tone_wav

    r = client.post(
        "/api/file-stream-upload",
        files={"file": ("clip.wav", tone_wav(1.0), "audio/wav")},
        data={"uploadPath": "music"},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["filePath"] == "music/clip.wav" and data["mimeType"] == "audio/wav" and data["audioId"]
    assert client.get(data["downloadUrl"]).status_code == 200


def test_separate_vocal_without_demucs_is_a_clear_kie_error(client: TestClient, no_demucs: None) -> None:
    headers, _ = keyed(client)
    audio_id = upload(client, headers=headers)["id"]
    r = client.post(
        "/api/v1/vocal-removal/generate",
        json={
            "taskId": audio_id,
            "audioId": audio_id,
            "type": "separate_vocal",
            "callBackUrl": "https://cb.example",
        },
        headers=headers,
    )
    assert r.status_code == 503
    body = r.json()
    assert body["code"] == 503 and body["data"] is None and "stemscribe models fetch" in body["msg"]
    r = client.get("/api/v1/vocal-removal/record-info", params={"taskId": audio_id}, headers=headers)
    assert r.status_code == 404 and r.json()["code"] == 404
