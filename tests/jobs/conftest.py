"""Fixtures of the job tests: a temp SQLite store and file storage, records, a fake transcriber."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from stemscribe.audio import load_audio
from stemscribe.jobs.models import AudioRecord, Principal, TaskKind, TaskRecord, TaskState
from stemscribe.jobs.storage import LocalStorage, audio_key
from stemscribe.jobs.store import SqlJobStore, open_store
from stemscribe.progress import ProgressCallback
from stemscribe.result import Instrument, NoteEvent, Result
from stemscribe.settings import Settings
from stemscribe.stems import Family


class FakeTranscriber:
    """Stands in for `transcription.pipeline.Transcriber`: one note per second, or the error it was given."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.calls: list[tuple[Any, str]] = []

    def transcribe(
        self, source: Any, *, stem: str = "auto", progress: ProgressCallback | None = None
    ) -> Result:
        self.calls.append((source, stem))
        if self.fail is not None:
            raise self.fail
        audio = load_audio(source, sr=None, mono=True)
        if progress is not None:
            progress("transcribing", 0.5)
        notes = [NoteEvent(60, float(i), i + 0.5, 0.8) for i in range(max(1, int(audio.duration)))]
        inst = Instrument("Acoustic Grand Piano", 0, False, Family.PIANO, notes)
        return Result([inst], audio.duration, stem if stem != "auto" else "mix", 120.0, [0.0, 0.5], "none")


def song_wav(seconds: float = 2.0, sr: int = 22050) -> bytes:
    """Stereo tones over clicks: something both stems of a harmonic/percussive split hold."""
    t = np.arange(int(seconds * sr)) / sr
    tones = 0.2 * np.sin(2 * np.pi * 220.0 * t) + 0.1 * np.sin(2 * np.pi * 330.0 * t)
    clicks = np.zeros_like(t)
    clicks[:: sr // 4] = 0.8
    left, right = tones + clicks, 0.8 * tones + clicks
    buf = io.BytesIO()
    sf.write(buf, np.stack([left, right], axis=1).astype(np.float32), sr, format="WAV")
    return buf.getvalue()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", workers=0, secret_key="k", worker_lease_s=5.0)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlJobStore]:
    s = open_store(f"sqlite:///{tmp_path / 'jobs.db'}")
    yield s
    s.close()


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "files")


@pytest.fixture
def principal(store: SqlJobStore) -> Principal:
    return store.ensure_local_principal()


@pytest.fixture
def song() -> bytes:
    return song_wav()


@pytest.fixture
def fake() -> FakeTranscriber:
    return FakeTranscriber()


@pytest.fixture
def add_audio(store: SqlJobStore, storage: LocalStorage, principal: Principal) -> Callable[..., AudioRecord]:
    """Store `data` as an upload of the local principal."""
    return lambda data, name="song.wav": _add_audio(store, storage, data, name=name)


@pytest.fixture
def add_task(store: SqlJobStore) -> Callable[..., TaskRecord]:
    """Queue a task on an audio."""
    return lambda audio, **kw: _add_task(store, audio, **kw)


def _add_audio(store: SqlJobStore, storage: LocalStorage, data: bytes, *, name: str) -> AudioRecord:
    audio_id = str(uuid.uuid4())
    size = storage.put_bytes(audio_key(audio_id), data)
    now = time.time()
    return store.add_audio(
        AudioRecord(
            id=audio_id,
            owner_id="local",
            filename=name,
            title=Path(name).stem,
            content_type="audio/wav",
            size=size,
            duration=1.0,
            sample_rate=22050,
            channels=1,
            source="upload",
            storage_key=audio_key(audio_id),
            created_at=now,
            expires_at=now + 3600,
        )
    )


def _add_task(
    store: SqlJobStore,
    audio: AudioRecord,
    *,
    kind: TaskKind = TaskKind.TRANSCRIBE,
    mode: str | None = None,
    callback_url: str | None = None,
    dialect: str = "native",
) -> TaskRecord:
    now = time.time()
    return store.add_task(
        TaskRecord(
            id=str(uuid.uuid4()),
            owner_id="local",
            kind=kind,
            dialect=dialect,
            state=TaskState.QUEUED,
            stage="queued",
            progress=0.0,
            audio_id=audio.id,
            filename=audio.filename,
            input_ids=[audio.id],
            stem="auto",
            quantize=False,
            mode=mode,
            request={},
            trace_id=str(uuid.uuid4()),
            callback_url=callback_url,
            base_url="http://testserver",
            created_at=now,
            expires_at=now + 3600,
            attempts=0,
        )
    )
