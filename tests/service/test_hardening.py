"""Issue #14, the service's side: each row's reproduction, answered in the dialect's shape."""

from __future__ import annotations

import os
import stat
import time
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from stemscribe.jobs.netguard import refusal_reason
from stemscribe.settings import Settings

from .conftest import LOOPBACK, tone_wav, upload, wait_task

UPLOADS = ("/v1/uploads", "/v1/transcriptions", "/api/file-stream-upload")


def keyed(client: TestClient, name: str = "k") -> tuple[dict[str, str], Any]:
    principal, key = client.app.state.ctx.store.create_key(name)  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {key}"}, principal


def post_file(
    client: TestClient, path: str, name: str, data: bytes, headers: Any = None, ctype: str = "audio/wav"
) -> httpx.Response:
    return client.post(path, files={"file": (name, data, ctype)}, headers=headers)


def message(r: httpx.Response) -> str:
    body = r.json()
    if "error" in body:
        return str(body["error"]["message"])
    return str(body.get("msg") or body.get("message"))


# --- rows 1, 2, 12: audio is refused by what decoding it would cost ------------------------------------


def test_decode_bomb_and_broken_headers_are_4xx_on_every_upload(
    hostile: Any, client: TestClient, tmp_path: Any
) -> None:
    bomb = hostile.silent_flac(tmp_path / "bomb.flac", channels=8, sr=655350, seconds=10.0).read_bytes()
    cases = {
        "bomb.flac": (bomb, 400, "STEMSCRIBE_MAX_SAMPLE_RATE"),
        "zero_bits.wav": (hostile.wav_bytes(bits=0), 400, "truncated or corrupt"),
        "huge_rate.wav": (hostile.wav_bytes(sr=2**31 - 1), 400, "2147483647 Hz"),
    }
    for path in UPLOADS:
        for name, (data, status, needle) in cases.items():
            r = post_file(client, path, name, data)
            assert r.status_code == status, (path, name, r.text)
            assert needle in message(r), (path, name, r.text)


def test_decode_budget_is_413_naming_its_setting(
    hostile: Any, make_client: Any, settings: Settings, tmp_path: Any
) -> None:
    client = make_client(settings.model_copy(update={"max_decode_samples": 50_000}))
    quad = hostile.silent_flac(tmp_path / "quad.flac", channels=4, sr=16000, seconds=1.0).read_bytes()
    r = post_file(client, "/v1/uploads", "quad.flac", quad)
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    assert "64,000 samples" in message(r) and "STEMSCRIBE_MAX_DECODE_SAMPLES" in message(r)


def test_fetched_audio_is_held_to_the_same_limits(hostile: Any, client: TestClient) -> None:
    from .conftest import AUDIO_FILES

    AUDIO_FILES["/huge_rate.wav"] = hostile.wav_bytes(sr=2**31 - 1)
    try:
        for path, body in (
            ("/suno/upload", {"audio_url": "https://files.example/huge_rate.wav"}),
            ("/api/v1/suno/upload", {"url": "https://files.example/huge_rate.wav"}),
            ("/api/file-url-upload", {"fileUrl": "https://files.example/huge_rate.wav"}),
            ("/v1/transcriptions", {"audio_url": "https://files.example/huge_rate.wav"}),
        ):
            r = client.post(path, json=body)
            assert r.status_code == 400 and "STEMSCRIBE_MAX_SAMPLE_RATE" in message(r), (path, r.text)
    finally:
        del AUDIO_FILES["/huge_rate.wav"]


def test_worker_checks_stored_audio_against_the_limits(make_client: Any, settings: Settings) -> None:
    """An audio accepted under looser limits fails its task (bad_audio) once the limits are tighter."""
    client = make_client(settings)
    up = upload(client, tone_wav(2.0, sr=16000))
    client.app.state.ctx.settings.max_sample_rate = 8000  # type: ignore[attr-defined]  # workers share it
    task = client.post("/v1/transcriptions", json={"audio_id": up["id"]}).json()
    done = wait_task(client, task["id"])
    assert done["state"] == "failed" and done["error"]["code"] == "bad_audio"
    assert "16000 Hz is above the limit of 8000 Hz" in done["error"]["message"]


# --- row 3: lengths and NUL bytes are validated at the edge --------------------------------------------


def test_long_names_types_and_nul_ids_are_4xx(client: TestClient) -> None:
    long_name = "x" * 450 + ".wav"
    r = post_file(client, "/v1/uploads", long_name, tone_wav(1.0), ctype="audio/" + "y" * 120)
    assert r.status_code == 201, r.text
    body = r.json()
    assert len(body["filename"]) <= 200 and body["filename"].endswith(".wav")
    assert body["content_type"] == "audio/x-wav" or body["content_type"].startswith("audio/")
    r = client.post(
        "/api/file-stream-upload",
        files={"file": ("a.wav", tone_wav(1.0), "audio/wav")},
        data={"fileName": "k" * 500 + ".wav"},
    )
    assert r.status_code == 200 and len(r.json()["data"]["fileName"]) <= 200
    for method, path, kwargs in (
        ("GET", "/v1/transcriptions/%00abc", {}),
        ("GET", "/v1/uploads/%00abc", {}),
        ("GET", "/api/v1/suno/task/%00x", {}),
        ("GET", "/api/v1/midi/record-info?taskId=%00", {}),
        ("GET", "/api/v1/vocal-removal/record-info?taskId=%00", {}),
        ("POST", "/suno/tasks", {"json": {"id": "\u0000abc", "action": "retrieve"}}),
        ("POST", "/suno/tasks", {"json": {"ids": ["\u0000abc", "y" * 500], "action": "retrieve_batch"}}),
        ("POST", "/suno/midi", {"json": {"audio_id": "\u0000" + "z" * 300}}),
        ("POST", "/api/v1/suno/midi", {"json": {"clip_id": "\u0000"}}),
        (
            "POST",
            "/api/v1/midi/generate",
            {"json": {"taskId": "\u0000", "callBackUrl": "https://cb.example"}},
        ),
    ):
        r = client.request(method, path, **kwargs)
        assert r.status_code in (200, 400, 404), (path, r.text)
        if path == "/suno/tasks" and "ids" in kwargs["json"]:
            assert r.json() == {"items": [], "count": 0}
        else:
            assert r.status_code == 404, (path, r.text)


# --- row 4: a locked database never stalls the event loop; a lock timeout is 503 ------------------------


@pytest.mark.embedded  # a SQLite lock held by another connection
def test_health_answers_while_a_write_waits_for_the_lock(
    settings: Settings, fake: Any, tmp_path: Any, live_server: Any
) -> None:
    import sqlite3
    import threading

    base = live_server(settings.model_copy(update={"db_busy_timeout_s": 3.0}), fake)
    up = httpx.post(f"{base}/v1/uploads", files={"file": ("a.wav", tone_wav(1.0), "audio/wav")}).json()
    lock = sqlite3.connect(settings.data_dir / "stemscribe.db", timeout=1)
    lock.execute("BEGIN EXCLUSIVE")
    answers: dict[str, httpx.Response] = {}

    def submit(name: str, path: str, body: dict[str, Any]) -> None:
        answers[name] = httpx.post(f"{base}{path}", json=body, timeout=30)

    writers = [
        threading.Thread(target=submit, args=("native", "/v1/transcriptions", {"audio_id": up["id"]})),
        threading.Thread(
            target=submit,
            args=("acedata", "/suno/midi", {"audio_id": up["id"], "callback_url": "https://cb.example"}),
        ),
    ]
    try:
        for w in writers:
            w.start()
        time.sleep(0.3)  # both writes now wait for the lock
        # Reads must not queue behind the lock: a blocked one would wait out the 3 s busy timeout (or
        # the lock, held until the end); 2 s leaves room for a loaded machine.
        for _ in range(3):
            started = time.monotonic()
            r = httpx.get(f"{base}/health", timeout=5)
            assert r.status_code == 200 and time.monotonic() - started < 2.0
            started = time.monotonic()
            r = httpx.post(f"{base}/suno/tasks", json={"id": "nope", "action": "retrieve"}, timeout=5)
            assert r.status_code == 404 and time.monotonic() - started < 2.0
        for w in writers:
            w.join(20)
    finally:
        lock.rollback()
        lock.close()
    native, ace = answers["native"], answers["acedata"]
    assert native.status_code == 503 and native.headers["retry-after"] == "2", native.text
    assert native.json()["error"]["code"] == "busy"
    assert ace.status_code == 503 and ace.json()["success"] is False and ace.json()["error"]["code"] == "busy"
    assert httpx.post(f"{base}/v1/transcriptions", json={"audio_id": up["id"]}).status_code == 202


# --- row 6: JSON bodies are capped, unknown fields dropped, ids cut -----------------------------------


def test_json_bodies_are_capped_and_extras_not_stored(client: TestClient, settings: Settings) -> None:
    up = upload(client)
    big = "x" * (settings.max_json_bytes + 10)
    for path, body in (
        ("/suno/midi", {"audio_id": up["id"], "junk": big}),
        ("/api/v1/suno/midi", {"clip_id": up["id"], "junk": big}),
        ("/api/v1/midi/generate", {"taskId": up["id"], "callBackUrl": "https://cb.example", "junk": big}),
        ("/v1/transcriptions", {"audio_id": up["id"], "junk": big}),
    ):
        r = client.post(path, json=body)
        assert r.status_code == 413, (path, r.status_code)
        assert "STEMSCRIBE_MAX_JSON_BYTES" in message(r), r.text
    r = client.post(
        "/suno/midi", json={"audio_id": up["id"], "callback_url": "https://cb.example", "junk": "j" * 1000}
    )
    task_id = r.json()["task_id"]
    got = client.post("/suno/tasks", json={"id": task_id, "action": "retrieve"}).json()
    assert got["request"] == {"audio_id": up["id"], "callback_url": "https://cb.example"}
    r = client.post("/suno/midi", json={"audio_id": "q" * 30000})
    assert r.status_code == 404 and len(message(r)) < 120, r.text


# --- row 7: deleting a separation removes its stems; uploads can be deleted --------------------------


def test_deletes_remove_stems_and_uploads(client: TestClient, no_demucs: None) -> None:
    up = upload(client, tone_wav(2.0))
    r = client.post(
        "/api/v1/vocal-removal/generate",
        json={"taskId": up["id"], "type": "split_stem", "callBackUrl": "https://cb.example/sep"},
    )
    sep_id = r.json()["data"]["taskId"]
    for _ in range(300):
        rec = client.get("/api/v1/vocal-removal/record-info", params={"taskId": sep_id}).json()["data"]
        if rec["successFlag"] != "PENDING":
            break
        time.sleep(0.05)
    assert rec["successFlag"] == "SUCCESS", rec
    stem = rec["response"]["originData"][0]["id"]
    link = rec["response"]["drumsUrl"]
    assert client.get(f"/v1/uploads/{stem}").status_code == 200 and client.get(link).status_code == 200
    assert client.delete(f"/v1/transcriptions/{sep_id}").status_code == 204
    assert client.get(f"/v1/uploads/{stem}").status_code == 404
    assert client.get(link).status_code == 404
    assert client.delete(f"/v1/uploads/{up['id']}").status_code == 204
    assert client.get(f"/v1/uploads/{up['id']}").status_code == 404
    assert client.get(f"/v1/uploads/{up['id']}/audio").status_code == 404
    assert client.delete(f"/v1/uploads/{up['id']}").status_code == 404


# --- row 8: revoking a key cancels its queued work and its links ---------------------------------------


def test_revoking_a_key_cancels_queued_work_and_links(
    make_client: Any, settings: Settings, receiver: Any
) -> None:
    client = make_client(settings.model_copy(update={"workers": 0}))
    headers, principal = keyed(client, "doomed")
    up = upload(client, headers=headers)
    r = client.post(
        "/v1/transcriptions",
        json={"audio_id": up["id"], "callback_url": "https://cb.example/r"},
        headers=headers,
    )
    task_id = r.json()["id"]
    r = client.post("/suno/upload", json={"audio_url": "https://files.example/song.wav"}, headers=headers)
    link = r.json()["data"]["audio_url"]
    assert client.get(link).status_code == 200
    store = client.app.state.ctx.store  # type: ignore[attr-defined]
    store.revoke_key(principal.id)
    task = store.get_task(task_id, None)
    assert task.state.value == "failed" and task.error_code == "key_revoked"
    assert store.claim_task("w", 60) is None  # nothing left for a worker to run
    assert client.get(link).status_code == 403
    time.sleep(0.2)
    assert receiver.requests == []


# --- row 9: callbacks that can be refused at submit are ---------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9/x", "http://169.254.169.254/latest", "http://cb.example:99999/", "http://[::1]/"],
)
def test_unreachable_callbacks_are_refused_at_submit(client: TestClient, url: str) -> None:
    up = upload(client)
    for path, body in (
        ("/v1/transcriptions", {"audio_id": up["id"], "callback_url": url}),
        ("/suno/midi", {"audio_id": up["id"], "callback_url": url}),
        ("/api/v1/midi/generate", {"taskId": up["id"], "callBackUrl": url}),
    ):
        r = client.post(path, json=body)
        assert r.status_code == 400, (path, r.text)
        assert "callback" in message(r)


# --- row 10: file names are kept and sent as base names ----------------------------------------------


@pytest.mark.parametrize("name", ["../../../../tmp/x.wav", "/etc/passwd", "..\\..\\win.wav"])
def test_upload_names_are_base_names(client: TestClient, name: str) -> None:
    body = upload(client, name=name)
    assert "/" not in body["filename"] and "\\" not in body["filename"] and ".." not in body["filename"]
    r = client.get(f"/v1/uploads/{body['id']}/audio")
    assert "/" not in r.headers["content-disposition"].split("filename=")[1]


# --- row 11: kie's audioId must be the caller's ---------------------------------------------------------


def test_kie_audio_id_of_another_key_is_404(client: TestClient) -> None:
    mine, _ = keyed(client, "mine")
    theirs, _ = keyed(client, "theirs")
    own = upload(client, headers=mine)["id"]
    other = upload(client, headers=theirs)["id"]
    for path, body in (
        ("/api/v1/midi/generate", {"taskId": own, "audioId": other, "callBackUrl": "https://cb.example"}),
        (
            "/api/v1/vocal-removal/generate",
            {"taskId": own, "audioId": other, "callBackUrl": "https://cb.example"},
        ),
    ):
        r = client.post(path, json=body, headers=mine)
        assert r.status_code == 404 and r.json()["code"] == 404, (path, r.text)


# --- row 13: health without tenant detail, metrics behind a key, private files, failed auth limited ----


def test_health_shows_no_per_state_history(client: TestClient) -> None:
    up = upload(client)
    task = client.post("/v1/transcriptions", json={"audio_id": up["id"]}).json()
    wait_task(client, task["id"])
    h = client.get("/health").json()
    assert set(h) == {"status", "workers", "queue"} and set(h["queue"]) == {"queued", "running"}


def test_metrics_can_require_a_key(make_client: Any, settings: Settings) -> None:
    client = make_client(settings.model_copy(update={"metrics_require_key": True}))
    headers, _ = keyed(client)
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=headers).status_code == 200
    assert client.get("/health").status_code == 200


@pytest.mark.embedded
def test_data_files_are_private(client: TestClient, settings: Settings) -> None:
    upload(client)
    db = settings.data_dir / "stemscribe.db"
    for path in (db, db.with_name("stemscribe.db-wal"), settings.data_dir / "secret.key"):
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    stored = [p for p in settings.resolved_storage_dir.rglob("*") if p.is_file()]
    assert stored and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in stored)
    assert stat.S_IMODE(settings.data_dir.stat().st_mode) == 0o700


def test_failed_authentication_is_rate_limited_per_address(make_client: Any, settings: Settings) -> None:
    client = make_client(settings.model_copy(update={"auth_fail_burst": 5, "auth_fail_rate_per_s": 0.5}))
    headers, _ = keyed(client)
    codes = [
        client.get("/v1/transcriptions", headers={"Authorization": f"Bearer sk_nope{i}"}).status_code
        for i in range(8)
    ]
    assert codes[:5] == [401] * 5 and codes[5:] == [429] * 3
    r = client.get("/v1/transcriptions", headers={"Authorization": "Bearer sk_nope"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    other = TestClient(client.app, client=("127.0.0.2", 5000))
    assert other.get("/v1/transcriptions", headers=headers).status_code == 200
    assert client.get("/v1/transcriptions", headers={"Authorization": "Bearer sk_nope"}).status_code == 429


# --- row 14: the SSRF guard sees IPv4 inside IPv6 and site-local addresses -----------------------------


@pytest.mark.parametrize("address", ["2002:7f00:1::1", "2002:a9fe:a9fe::1", "fec0::1", "2002:c0a8:101::1"])
def test_ssrf_guard_refuses_embedded_and_site_local(address: str) -> None:
    assert refusal_reason(address) is not None
    assert refusal_reason("2002:808:808::1") is None  # 6to4 of a public address


@pytest.mark.embedded
def test_file_modes_survive_umask(tmp_path: Any) -> None:
    from stemscribe.service import create_app

    old = os.umask(0)
    try:
        s = Settings(data_dir=tmp_path / "d", workers=0, secret_key="k")
        with TestClient(create_app(s), client=LOOPBACK):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "d" / "stemscribe.db").stat().st_mode) == 0o600
