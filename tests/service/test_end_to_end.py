"""One end-to-end run: the real Transcriber in a spawned worker process, on a 3-second clip."""

from __future__ import annotations

import io
from typing import Any

import mido
import numpy as np
import soundfile as sf
from fastapi.testclient import TestClient

from stemscribe.service import create_app
from stemscribe.settings import Settings

from .conftest import LOOPBACK, wait_task


def test_real_transcriber_in_a_worker_process(tmp_path: Any) -> None:
    sr = 22050
    t = np.arange(sr) / sr
    # C4, E4, G4, one second each.
    clip = np.concatenate([0.4 * np.sin(2 * np.pi * f * t) for f in (261.63, 329.63, 392.0)]).astype(
        np.float32
    )
    wav = io.BytesIO()
    sf.write(wav, clip, sr, format="WAV")

    settings = Settings(data_dir=tmp_path, workers=1, worker_threads=False, secret_key="k", sync_wait_s=120.0)
    with TestClient(create_app(settings), client=LOOPBACK) as client:
        up = client.post("/v1/uploads", files={"file": ("triad.wav", wav.getvalue(), "audio/wav")}).json()
        r = client.post("/suno/midi", json={"audio_id": up["id"]})  # waits for the worker
        assert r.status_code == 200, r.text
        notes = [n for inst in r.json()["data"][0]["instruments"] for n in inst["notes"]]
        pitches = {n["pitch"] for n in notes}
        assert {60, 64, 67} <= pitches, pitches
        for n in notes:
            assert 0 <= n["start"] < n["end"] <= 3.05 and 0 < n["velocity"] <= 1

        task = client.post("/v1/transcriptions", json={"audio_id": up["id"], "stem": "piano"}).json()
        done = wait_task(client, task["id"], timeout=120)
        assert done["state"] == "succeeded" and done["stage"] == "done"
        mid = mido.MidiFile(file=io.BytesIO(client.get(done["midi_url"]).content))
        played = {m.note for tr in mid.tracks for m in tr if m.type == "note_on" and m.velocity > 0}
        assert {60, 64, 67} <= played
