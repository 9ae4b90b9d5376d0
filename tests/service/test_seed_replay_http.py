"""Seed 000's Python `requests` snippet and seed 001's curl, verbatim but for the host, over real HTTP."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from .conftest import tone_wav

requests = pytest.importorskip("requests", reason="requests is not installed")


@pytest.fixture
def live_server(make_client: Any) -> Iterator[tuple[str, str]]:
    """A started server (with --scale-out, an API node of a deployment) under uvicorn as well."""
    app = make_client().app  # started (lifespan run) by its test client; uvicorn only serves it
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    _, token = app.state.ctx.store.create_key("seed")
    try:
        yield f"http://127.0.0.1:{port}", token
    finally:
        server.should_exit = True
        thread.join(20)


def test_seed_000_requests_snippet(live_server: tuple[str, str]) -> None:
    base, token = live_server
    up = requests.post(
        f"{base}/v1/uploads",
        files={"file": ("song.wav", tone_wav(2.0), "audio/wav")},
        headers={"authorization": f"Bearer {token}"},
        timeout=30,
    ).json()

    # --- seed 000, with api.acedata.cloud replaced by the server and the audio_id by the upload's ---
    url = f"{base}/suno/midi"

    headers = {
        "accept": "application/json",
        "authorization": f"Bearer {token}",
        "content-type": "application/json",
    }

    payload = {"audio_id": up["id"]}

    response = requests.post(url, json=payload, headers=headers, timeout=60)
    # --- end of the seed ---
    body = response.json()
    assert response.status_code == 200 and body["success"] is True
    assert set(body) == {"success", "task_id", "trace_id", "data"}
    assert body["data"][0]["state"] == "complete" and body["data"][0]["instruments"][0]["notes"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_seed_001_curl(live_server: tuple[str, str]) -> None:
    base, token = live_server
    up = requests.post(
        f"{base}/v1/uploads",
        files={"file": ("song.wav", tone_wav(2.0), "audio/wav")},
        headers={"authorization": f"Bearer {token}"},
        timeout=30,
    ).json()
    out = subprocess.run(
        [
            "curl", "--silent", "--location", "--request", "POST", f"{base}/api/v1/suno/midi",
            "--header", f"Authorization: Bearer {token}",
            "--header", "Content-Type: application/json",
            "--data-raw", '{\n    "clip_id":"' + up["id"] + '"\n}',
        ],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    import json

    body = json.loads(out.stdout)
    assert body["code"] == 200 and set(body["data"]) == {"midi_url", "instruments"}
    midi = requests.get(body["data"]["midi_url"], timeout=30)
    assert midi.status_code == 200 and midi.content[:4] == b"MThd"
