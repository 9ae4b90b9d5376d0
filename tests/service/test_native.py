"""The native `/v1` API: uploads, transcriptions, artifacts, auth, limits."""

from __future__ import annotations

import io
import time
from typing import Any

import mido
from fastapi.testclient import TestClient

from stemscribe.settings import Settings

from .conftest import LOOPBACK, tone_wav, upload, wait_task


def test_upload_then_transcribe_then_download(client: TestClient) -> None:
    data = tone_wav(2.0, (220.0, 330.0))
    up = upload(client, data)
    assert up["filename"] == "song.wav" and up["size"] == len(data)
    assert abs(up["duration"] - 2.0) < 0.01
    assert up["audio_url"] == f"/v1/uploads/{up['id']}/audio"
    audio = client.get(up["audio_url"])
    assert audio.content == data and audio.headers["content-length"] == str(len(data))
    assert audio.headers["content-disposition"] == 'attachment; filename="song.wav"'

    r = client.post("/v1/transcriptions", json={"audio_id": up["id"], "stem": "piano", "quantize": True})
    assert r.status_code == 202, r.text
    task = r.json()
    assert task["state"] in ("queued", "running", "succeeded") and task["stem"] == "piano"
    done = wait_task(client, task["id"])
    assert done["state"] == "succeeded", done
    assert done["progress"] == 1.0 and done["stage"] == "done" and done["error"] is None
    assert done["started_at"] and done["finished_at"] and done["created_at"].endswith("Z")
    inst = done["result"]["instruments"][0]
    assert [n["pitch"] for n in inst["notes"]] == [60, 61]
    assert done["json_url"] == f"/v1/transcriptions/{task['id']}.json"
    assert client.get(done["json_url"]).json() == done["result"]
    for url, name in ((done["midi_url"], "song.mid"), (done["midi_quantized_url"], "song.quantized.mid")):
        mid = client.get(url)
        assert mid.status_code == 200 and mid.headers["content-type"] == "audio/midi"
        assert mid.headers["content-disposition"] == f'attachment; filename="{name}"'
        notes = [
            m.note
            for t in mido.MidiFile(file=io.BytesIO(mid.content)).tracks
            for m in t
            if m.type == "note_on" and m.velocity > 0
        ]
        assert sorted(notes) == [60, 61]

    listing = client.get("/v1/transcriptions?limit=5").json()
    assert listing["count"] == 1 and listing["items"][0]["id"] == task["id"]

    assert client.delete(f"/v1/transcriptions/{task['id']}").status_code == 204
    assert client.get(f"/v1/transcriptions/{task['id']}").status_code == 404
    assert client.get(f"/v1/transcriptions/{task['id']}.mid").status_code == 404


def test_multipart_transcription_and_listing_order(client: TestClient) -> None:
    ids = []
    for _ in range(2):
        r = client.post(
            "/v1/transcriptions",
            files={"file": ("a.flac", tone_wav(1.0, fmt="FLAC"), "audio/flac")},
            data={"stem": "bass", "quantize": "1"},
        )
        assert r.status_code == 202, r.text
        assert r.json()["filename"] == "a.flac" and r.json()["quantize"] is True
        ids.append(r.json()["id"])
    items = client.get("/v1/transcriptions").json()["items"]
    assert [t["id"] for t in items] == ids[::-1]
    assert wait_task(client, ids[1])["result"]["stem"] == "bass"


def test_transcription_from_audio_url(client: TestClient) -> None:
    r = client.post("/v1/transcriptions", json={"audio_url": "https://music.example/song.wav"})
    assert r.status_code == 202, r.text
    assert wait_task(client, r.json()["id"])["state"] == "succeeded"


def error(r: Any) -> dict[str, Any]:
    return r.json()["error"]


def test_bad_inputs_answer_clear_errors(client: TestClient, settings: Settings) -> None:
    r = client.post("/v1/uploads", files={"file": ("notes.txt", b"definitely not audio", "text/plain")})
    assert r.status_code == 400 and error(r)["code"] == "bad_request"
    assert "not usable as audio" in error(r)["message"] and "notes.txt" in error(r)["message"]

    r = client.post("/v1/uploads", files={"file": ("empty.wav", b"", "audio/wav")})
    assert r.status_code == 400 and "empty" in error(r)["message"]

    r = client.post(
        "/v1/uploads", files={"file": ("big.wav", b"\0" * (settings.max_upload_bytes + 10), "audio/wav")}
    )
    assert r.status_code == 413 and error(r)["code"] == "too_large"

    up = upload(client)
    r = client.post("/v1/transcriptions", json={"audio_id": up["id"], "stem": "kazoo"})
    assert r.status_code == 400 and "kazoo" in error(r)["message"]
    r = client.post("/v1/transcriptions", json={"audio_id": up["id"], "audio_url": "https://x.example/a.wav"})
    assert r.status_code == 400
    r = client.post("/v1/transcriptions", json={"audio_id": "nope"})
    assert r.status_code == 404 and error(r)["code"] == "not_found"
    r = client.post("/v1/transcriptions", json={"audio_url": "https://music.example/text"})
    assert r.status_code == 400 and "not usable as audio" in error(r)["message"]
    r = client.post("/v1/transcriptions", json={"audio_url": "http://127.0.0.1:9/a.wav"})
    assert r.status_code == 400, r.text
    r = client.post("/v1/transcriptions", json={"audio_url": "file:///etc/passwd"})
    assert r.status_code == 400 and "http" in error(r)["message"]
    r = client.post("/v1/transcriptions", content=b"x", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    assert client.get("/v1/transcriptions/nope").status_code == 404
    assert client.get("/no/such/route").json()["error"]["code"] == "no_api"


def test_too_long_audio_is_refused(make_client: Any, settings: Settings) -> None:
    client = make_client(settings.model_copy(update={"max_duration_s": 1.0}))
    r = client.post("/v1/uploads", files={"file": ("long.wav", tone_wav(3.0), "audio/wav")})
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_long"


def test_keys_isolate_callers_and_gate_local_access(client: TestClient) -> None:
    # No key yet, loopback caller: the built-in local principal.
    local_upload = upload(client)
    store = client.app.state.ctx.store  # type: ignore[attr-defined]
    _, key_a = store.create_key("alice")
    pb, key_b = store.create_key("bob")
    a = {"authorization": f"Bearer {key_a}"}
    b = {"authorization": f"Bearer {key_b}"}

    r = client.get("/v1/transcriptions")
    assert r.status_code == 401 and error(r)["code"] == "no_token"
    r = client.get("/v1/transcriptions", headers={"authorization": "Bearer sk_wrong"})
    assert r.status_code == 401 and error(r)["code"] == "invalid_token"
    r = client.get("/v1/transcriptions", headers={"authorization": "Basic abc"})
    assert r.status_code == 401

    up = upload(client, headers=a)
    task = client.post("/v1/transcriptions", json={"audio_id": up["id"]}, headers=a).json()
    assert client.get(f"/v1/transcriptions/{task['id']}", headers=b).status_code == 404
    assert client.get(f"/v1/uploads/{up['id']}/audio", headers=b).status_code == 404
    assert client.post("/v1/transcriptions", json={"audio_id": up["id"]}, headers=b).status_code == 404
    assert (
        client.post("/v1/transcriptions", json={"audio_id": local_upload["id"]}, headers=a).status_code == 404
    )
    assert client.delete(f"/v1/transcriptions/{task['id']}", headers=b).status_code == 404
    assert client.get("/v1/transcriptions", headers=b).json()["count"] == 0
    assert wait_task(client, task["id"], headers=a)["state"] == "succeeded"

    store.revoke_key(pb.id)
    r = client.get("/v1/transcriptions", headers=b)
    assert r.status_code == 403 and error(r)["code"] == "forbidden"


def test_local_access_needs_a_loopback_bind_and_client(make_client: Any, settings: Settings) -> None:
    remote_bind = make_client(settings.model_copy(update={"host": "0.0.0.0"}))
    assert remote_bind.get("/v1/transcriptions").status_code == 401
    required = make_client(settings.model_copy(update={"require_auth": True}))
    assert required.get("/v1/transcriptions").status_code == 401
    plain = make_client()
    other = TestClient(plain.app, client=("203.0.113.5", 4000))
    assert other.get("/v1/transcriptions").status_code == 401
    assert plain.get("/v1/transcriptions").status_code == 200


def test_rate_limit_per_key(make_client: Any, settings: Settings) -> None:
    client = make_client(settings.model_copy(update={"rate_limit_per_s": 0.1, "rate_limit_burst": 3}))
    codes = [client.get("/v1/transcriptions").status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[-1] == 429
    r = client.get("/v1/transcriptions")
    assert error(r)["code"] == "too_many_requests" and int(r.headers["retry-after"]) >= 1


def test_failed_transcription_reports_the_error(make_client: Any) -> None:
    from stemscribe.errors import ModelError

    from .conftest import FakeTranscriber

    client = make_client(transcriber=FakeTranscriber(fail=ModelError("weights damaged")))
    up = upload(client)
    task = client.post("/v1/transcriptions", json={"audio_id": up["id"]}).json()
    done = wait_task(client, task["id"])
    assert done["state"] == "failed"
    assert done["error"] == {"code": "model_error", "message": "weights damaged"}
    r = client.get(f"/v1/transcriptions/{task['id']}.mid")
    assert r.status_code == 409 and error(r)["code"] == "task_failed"


def test_health_and_metrics(client: TestClient, expected_workers: int) -> None:
    deadline = time.monotonic() + 60  # Celery workers are counted once the node's first ping returns
    while (h := client.get("/health").json())["workers"] != expected_workers and time.monotonic() < deadline:
        time.sleep(0.1)
    assert h["status"] == "ok" and h["workers"] == expected_workers, h
    node = TestClient(client.app, client=LOOPBACK)  # metrics are each node's own (with --scale-out, two)
    node.get("/v1/transcriptions")
    text = node.get("/metrics").text
    assert 'stemscribe_http_requests_total{method="GET",route="/v1/transcriptions",status="200"}' in text
    assert "stemscribe_http_request_seconds_bucket" in text
    assert (
        TestClient(client.app, client=LOOPBACK).get("/openapi.json").json()["info"]["title"] == "stemscribe"
    )


def test_chunked_upload_stops_at_the_cap(client: TestClient, settings: Settings) -> None:
    """No Content-Length: the body is counted while it streams, and the request ends with 413."""
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()

    def body() -> Any:
        yield head
        for _ in range(settings.max_upload_bytes // 65536 + 4):
            yield b"\0" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    for path in ("/v1/uploads", "/v1/transcriptions"):
        r = client.post(path, content=body(), headers=headers)
        assert r.status_code == 413, (path, r.text)
        assert error(r)["code"] == "too_large"
    storage = client.app.state.ctx.storage  # type: ignore[attr-defined]
    spool = getattr(storage, "temp_dir", None) or storage.root / ".tmp"  # S3Storage's, or LocalStorage's
    assert list(spool.iterdir()) == []
