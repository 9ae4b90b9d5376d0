"""The worker: claims tasks from the store, runs the core library on them, stores the artifacts.

A worker holds one transcriber (models loaded once) and runs one task at a time. While a task runs,
a heartbeat extends its lease, so a task whose worker died is queued again by the runner.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.exc import SQLAlchemyError

from stemscribe.audio import check_audio
from stemscribe.errors import (
    AudioError,
    InvalidOptionError,
    ModelError,
    SeparationUnavailableError,
    StemscribeError,
)
from stemscribe.jobs.models import AudioRecord, TaskKind, TaskRecord
from stemscribe.jobs.separation import build_separator, plan_separation, stem_set_of, stem_title
from stemscribe.jobs.storage import (
    ArtifactStorage,
    StorageError,
    audio_key,
    result_key,
    storage_for,
    task_prefix,
)
from stemscribe.jobs.store import DATABASE_DOWN, SqlJobStore, retry_while_down
from stemscribe.progress import ProgressCallback
from stemscribe.result import Result
from stemscribe.separation.files import write_stems
from stemscribe.settings import Settings
from stemscribe.stems import StemType

logger = logging.getLogger(__name__)


class TranscriberLike(Protocol):
    """What a worker needs from `stemscribe.transcription.pipeline.Transcriber`."""

    def transcribe(
        self, source: Any, *, stem: str = "auto", progress: ProgressCallback | None = None
    ) -> Result: ...


TranscriberFactory = Callable[[Settings], TranscriberLike]


def default_transcriber_factory(settings: Settings) -> TranscriberLike:
    """The real pipeline, models loaded once per worker."""
    from stemscribe.transcription.pipeline import Transcriber

    return Transcriber(max_duration=settings.max_duration_s)


def worker_identity(suffix: str = "") -> str:
    return f"{socket.gethostname()}:{os.getpid()}{suffix}"


_STEM_FOR_SOURCE = {s.value for s in StemType}

OUTCOME_WAIT_S = 600.0
"""How long a worker that finished a task waits for a database that is down to record it."""


def error_code(exc: BaseException) -> str:
    """The task error code for an exception raised while running a task."""
    if isinstance(exc, AudioError):
        return "bad_audio"
    if isinstance(exc, InvalidOptionError):
        return "invalid_option"
    if isinstance(exc, SeparationUnavailableError):
        return "separation_unavailable"
    if isinstance(exc, ModelError):
        return "model_error"
    return "internal_error"


class Worker:
    """Runs tasks one at a time; `run(stop)` loops until `stop` is set."""

    def __init__(
        self,
        settings: Settings,
        store: SqlJobStore,
        storage: ArtifactStorage,
        transcriber_factory: TranscriberFactory = default_transcriber_factory,
        *,
        worker_id: str | None = None,
        poll_s: float = 0.2,
    ) -> None:
        self.settings = settings
        self.store = store
        self.storage = storage
        self.worker_id = worker_id or worker_identity()
        self.poll_s = poll_s
        self._factory = transcriber_factory
        self._transcriber: TranscriberLike | None = None

    @property
    def transcriber(self) -> TranscriberLike:
        if self._transcriber is None:
            self._transcriber = self._factory(self.settings)
        return self._transcriber

    def run(self, stop: threading.Event | Any) -> None:
        _ = self.transcriber  # load the models before taking work
        while not stop.is_set():
            try:
                worked = self.run_once()
            except Exception:  # noqa: BLE001 - a store hiccup must not kill the worker; it is logged
                logger.exception("worker %s: store error", self.worker_id)
                worked = False
            if not worked:
                stop.wait(self.poll_s)

    def run_once(self) -> bool:
        """Claim and run one task; False when the queue was empty."""
        task = self.store.claim_task(self.worker_id, self.settings.worker_lease_s)
        if task is None:
            return False
        self.run_task(task)
        return True

    def run_task(self, task: TaskRecord) -> None:
        lease = self.settings.worker_lease_s
        lost = threading.Event()
        last = [0.0]

        def progress(stage: str, fraction: float) -> None:
            now = time.monotonic()
            if now - last[0] < 0.25 and fraction < 1.0:
                return
            last[0] = now
            try:
                if not self.store.report_progress(task.id, self.worker_id, stage, round(fraction, 4), lease):
                    lost.set()
            except SQLAlchemyError:  # a database restarting: the work goes on, the next report retries
                logger.warning("progress of %s not stored", task.id, exc_info=True)

        stop_beat = threading.Event()

        def heartbeat() -> None:
            while not stop_beat.wait(lease / 4):
                try:
                    if not self.store.extend_lease(task.id, self.worker_id, lease):
                        lost.set()
                except Exception:  # noqa: BLE001 - the next beat retries
                    logger.warning("heartbeat for %s failed", task.id, exc_info=True)

        beat = threading.Thread(target=heartbeat, name=f"heartbeat-{task.id[:8]}", daemon=True)
        beat.start()
        try:
            if task.kind is TaskKind.SEPARATE:
                output = self._separate(task, progress)
            else:
                output = self._transcribe(task, progress)
        except DATABASE_DOWN:
            raise  # not the task's fault: it stays this worker's, to be taken up again (see run)
        except StemscribeError as exc:
            self._finish(task.id, error=(error_code(exc), str(exc)))
            return
        except Exception as exc:  # noqa: BLE001 - anything else fails the task with its message
            logger.exception("task %s failed", task.id)
            self._finish(task.id, error=("internal_error", f"{type(exc).__name__}: {exc}"))
            return
        finally:
            stop_beat.set()
        if self._finish(task.id, output=output) is None:
            if self.store.get_task(task.id, None) is None:  # deleted while it ran: drop what it wrote
                self.storage.delete_prefix(task_prefix(task.id))
            else:
                logger.warning("task %s was taken from worker %s before it finished", task.id, self.worker_id)

    def _finish(self, task_id: str, **outcome: Any) -> TaskRecord | None:
        """`finish_task`, waiting for a database that is restarting (up to `OUTCOME_WAIT_S`): the
        work is done and stored, only its record is missing. Should the task's lease run out
        meanwhile and another worker take it, this record is refused and that worker's stands."""
        return retry_while_down(
            lambda: self.store.finish_task(task_id, self.worker_id, **outcome),
            within_s=max(OUTCOME_WAIT_S, self.settings.worker_lease_s),
        )

    # --- task kinds -------------------------------------------------------------------------------

    def _input(self, audio_id: str) -> tuple[AudioRecord, Path | bytes]:
        audio = self.store.get_audio(audio_id, None)
        if audio is None or audio.purged_at is not None:
            raise AudioError(f"audio {audio_id} is gone (deleted or expired)")
        path = self.storage.local_path(audio.storage_key)
        source: Path | bytes
        if path is not None and path.is_file():
            source = path
        else:
            try:
                source = self.storage.get_bytes(audio.storage_key)
            except StorageError as exc:
                raise AudioError(f"audio {audio_id}: {exc}") from None
        check_audio(source, limits=self.settings.decode_limits())  # what uploads were checked against
        return audio, source

    def _transcribe(self, task: TaskRecord, progress: ProgressCallback) -> dict[str, Any]:
        ids = list(task.input_ids or [task.audio_id])
        results: list[Result] = []
        for i, audio_id in enumerate(ids):
            audio, source = self._input(audio_id)
            stem = task.stem
            if stem == "auto" and audio.stem_name in _STEM_FOR_SOURCE:
                stem = str(audio.stem_name)

            def part(stage: str, fraction: float, i: int = i) -> None:
                progress(stage, (i + fraction) / len(ids))

            results.append(self.transcriber.transcribe(source, stem=stem, progress=part))
        result = merge_results(results) if len(results) > 1 else results[0]
        self.storage.put_bytes(result_key(task.id, "result.json"), result.to_json().encode())
        self.storage.put_bytes(result_key(task.id, "result.mid"), result.to_midi_bytes())
        self.storage.put_bytes(
            result_key(task.id, "result.quantized.mid"), result.to_midi_bytes(quantize=True)
        )
        return {
            "note_count": result.note_count,
            "instrument_count": len(result.instruments),
            "duration": result.duration,
        }

    def _separate(self, task: TaskRecord, progress: ProgressCallback) -> dict[str, Any]:
        """Separate the task's audio with the library's stem sets and writer (`write_stems`, FLAC)."""
        import soundfile as sf

        from stemscribe.audio import load_audio

        parent, source = self._input(task.audio_id)
        mode = task.mode or "all_stems"
        plan = plan_separation(mode)
        progress("loading", 0.0)
        audio = load_audio(source, sr=None, mono=False, limits=self.settings.decode_limits())
        separator = build_separator(plan)
        song = parent.title or Path(parent.filename).stem or "audio"
        items: list[dict[str, Any]] = []
        now = time.time()
        with tempfile.TemporaryDirectory(prefix="stems-") as tmp:
            written = write_stems(
                separator,
                audio,
                Path(tmp),
                stem_set=stem_set_of(mode),
                fmt="flac",
                progress=lambda s, f: progress(s, 0.05 + 0.85 * f),
            )
            for name, path in written.items():
                info = sf.info(str(path))
                duration = info.frames / info.samplerate
                stem_id = stem_audio_id(task.id, name)
                size = self.storage.put_file(audio_key(stem_id), path)
                title = stem_title(song, name, mode)
                self.store.put_audio(
                    AudioRecord(
                        id=stem_id,
                        owner_id=task.owner_id,
                        filename=f"{Path(parent.filename).stem or 'audio'}.{name}.flac",
                        title=title,
                        content_type="audio/flac",
                        size=size,
                        duration=duration,
                        sample_rate=info.samplerate,
                        channels=info.channels,
                        source="stem",
                        parent_id=parent.id,
                        stem_name=name,
                        storage_key=audio_key(stem_id),
                        created_at=now,
                        expires_at=task.expires_at,
                    )
                )
                items.append({"name": name, "audio_id": stem_id, "title": title, "duration": duration})
        progress("done", 1.0)
        return {"separator": plan.separator, "mode": mode, "stems": items}


STEM_IDS = uuid.UUID("4f0c2a57-6b1e-4f43-9d0e-8a7c5e1b2d30")


def stem_audio_id(task_id: str, stem: str) -> str:
    """The audio id of one stem of a separation: the same on every run of the task, so a task run
    again (its worker died) overwrites its stems instead of adding a second set."""
    return str(uuid.uuid5(STEM_IDS, f"{task_id}/{stem}"))


def merge_results(results: list[Result]) -> Result:
    """One result holding every input's instruments (kie's MIDI of all separated tracks)."""
    first = results[0]
    return Result(
        instruments=[inst for r in results for inst in r.instruments],
        duration=max(r.duration for r in results),
        stem="mix",
        tempo=first.tempo,
        beats=list(first.beats),
        separator=first.separator,
    )


def open_worker(settings: Settings, factory: TranscriberFactory, worker_id: str | None = None) -> Worker:
    store = SqlJobStore(
        settings.resolved_database_url,
        webhook_attempts=settings.webhook_attempts,
        busy_timeout_s=settings.db_busy_timeout_s,
    )
    storage = storage_for(settings)
    return Worker(settings, store, storage, factory, worker_id=worker_id)


PR_SET_PDEATHSIG = 1


def exit_with_parent(parent_pid: int, *, poll_s: float = 1.0) -> None:
    """End this process as soon as the process that started it dies (even by `kill -9`).

    On Linux the kernel sends SIGKILL when the parent goes (prctl PR_SET_PDEATHSIG); everywhere a
    daemon thread also watches multiprocessing's parent sentinel (a pipe that closes with the parent)
    and the parent pid, and exits. A task the worker held is then queued again by the next server
    (its worker id names a pid that no longer exists).
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            logger.warning("prctl(PR_SET_PDEATHSIG) unavailable; watching the parent instead")
    if os.getppid() != parent_pid:  # it died before the signal was armed
        os._exit(1)
    parent = multiprocessing.parent_process()
    sentinel = parent.sentinel if parent is not None else None

    def watch() -> None:
        from multiprocessing.connection import wait

        while True:
            if sentinel is not None and wait([sentinel], timeout=poll_s):
                break
            if sentinel is None:
                time.sleep(poll_s)
            if os.getppid() != parent_pid:
                break
        logger.warning("the server (pid %d) is gone; worker %d exits", parent_pid, os.getpid())
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def process_main(settings_json: str, factory: TranscriberFactory, stop: Any, parent_pid: int = 0) -> None:
    """Entry point of a worker process (spawned by `LocalRunner`); it exits when its parent dies."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(process)d %(levelname)s %(message)s")
    exit_with_parent(parent_pid or os.getppid())
    settings = Settings.model_validate_json(settings_json)
    worker = open_worker(settings, factory)
    try:
        worker.run(stop)
    except KeyboardInterrupt:
        pass
    finally:
        worker.store.close()
