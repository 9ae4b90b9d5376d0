"""What the routers share: the store, the storage, and the operations every dialect uses.

Routers only translate requests and answers; the work (accepting audio, creating tasks, waiting for
them, signing download links, reading results) happens here.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import mimetypes
import re
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from stemscribe.audio import scan_audio
from stemscribe.errors import AudioError, AudioTooLongError
from stemscribe.jobs import score as score_files
from stemscribe.jobs.models import AudioRecord, Principal, TaskKind, TaskRecord, TaskState, WebhookDelivery
from stemscribe.jobs.netguard import BlockedAddressError, check_destination, fetch_stream
from stemscribe.jobs.runner import Runner
from stemscribe.jobs.separation import plan_separation
from stemscribe.jobs.storage import (
    ArtifactStorage,
    StorageError,
    audio_key,
    audio_prefix,
    result_key,
    task_prefix,
)
from stemscribe.jobs.store import SqlJobStore, hash_key, new_id
from stemscribe.service.errors import ApiError, library_error, not_found, show_id
from stemscribe.service.limits import RedisKeyEpoch, RedisRateLimiter
from stemscribe.settings import Settings

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
MUSICXML_TYPE = "application/vnd.recordare.musicxml+xml"
SCORE_KINDS = frozenset({"musicxml", "pdf", "svg"})

MAX_FILENAME = 200
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*$")


def clean_filename(name: str | None) -> str:
    """The base name of a caller's file name (no directories, no control characters), at most 200
    characters with its extension kept; "audio" when nothing is left."""
    base = re.split(r"[/\\]", name or "")[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip().lstrip(".") or "audio"
    if len(base) > MAX_FILENAME:
        stem, dot, ext = base.rpartition(".")
        ext = ext if dot and len(ext) <= 16 else ""
        base = (stem if ext else base)[: MAX_FILENAME - len(ext) - 1].rstrip() + (f".{ext}" if ext else "")
    return base


def clean_content_type(value: str | None) -> str | None:
    """A caller's `type/subtype` (parameters dropped) when it is well formed and short, else None."""
    ctype = (value or "").split(";")[0].strip().lower()
    if not ctype or ctype == "application/octet-stream" or len(ctype) > 100 or not _CONTENT_TYPE.match(ctype):
        return None
    return ctype


KeyEpoch = tuple[int, int | None]
"""When a key lookup was made: (this node's count of forgotten caches, the shared Redis epoch)."""

FINAL_STATES = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.EXPIRED})


class RateLimiter:
    """A token bucket per principal: `rate` per second sustained, `burst` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, max(1, burst)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> float:
        """0 when the request may go ahead, else the seconds to wait."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def waiting(self, key: str) -> float:
        """Like `check` without taking a token: 0 when one is there, else the seconds until there is."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), time.monotonic()))
        tokens = min(float(self.burst), tokens + (time.monotonic() - last) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate


@dataclass
class ServiceContext:
    settings: Settings
    store: SqlJobStore
    storage: ArtifactStorage
    fetch_transport: httpx.BaseTransport | None = None
    secret: bytes = b""
    runner: Runner | None = None
    metrics: Any = None
    limiter: RateLimiter | RedisRateLimiter = field(init=False)
    auth_failures: RateLimiter | RedisRateLimiter = field(init=False)
    """Requests with a missing or unknown key, per client address."""
    key_epoch: RedisKeyEpoch | None = field(default=None, init=False)
    """Scale-out with Redis: the counter every key change moves on (see `limits.RedisKeyEpoch`)."""
    _keys: dict[str, tuple[float, KeyEpoch, Principal | None]] = field(default_factory=dict, init=False)
    _keys_exist: tuple[float, KeyEpoch, bool] = field(default=(0.0, (0, None), False), init=False)
    _forgotten: int = field(default=0, init=False)
    _results: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    local_principal: Principal | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        s = self.settings
        shared = s.resolved_redis_url
        if shared:  # every API node counts in the same buckets
            ns = s.queue_prefix
            self.limiter = RedisRateLimiter(
                shared, s.rate_limit_per_s, s.rate_limit_burst, name="key", namespace=ns
            )
            self.auth_failures = RedisRateLimiter(
                shared, s.auth_fail_rate_per_s, s.auth_fail_burst, name="auth-fail", namespace=ns
            )
            self.key_epoch = RedisKeyEpoch(shared, namespace=ns)
        else:
            self.limiter = RateLimiter(s.rate_limit_per_s, s.rate_limit_burst)
            self.auth_failures = RateLimiter(s.auth_fail_rate_per_s, s.auth_fail_burst)
        self.store.on_keys_changed = self.forget_keys  # keys made or revoked through this store
        if not self.secret:
            self.secret = self.settings.resolved_secret_key()

    # --- principals -------------------------------------------------------------------------------

    def forget_keys(self) -> None:
        """Drop every cached key lookup, here and (through the key epoch) on every API node."""
        self._forgotten += 1
        if self.key_epoch is not None:
            self.key_epoch.bump()
        self._keys.clear()

    def _epoch(self) -> KeyEpoch:
        """(this node's count of `forget_keys`, the shared epoch or None) as a lookup starts."""
        return self._forgotten, self.key_epoch.current() if self.key_epoch is not None else None

    def _fresh(self, at: float, epoch: KeyEpoch) -> bool:
        """Whether a key lookup made at `at` (monotonic), under `epoch`, may still answer: younger
        than `STEMSCRIBE_KEY_CACHE_S`, and no key changed since, here or (shared epoch) anywhere."""
        if time.monotonic() - at >= self.settings.key_cache_s or epoch[0] != self._forgotten:
            return False
        return self.key_epoch is None or (epoch[1] is not None and epoch == self._epoch())

    def cached_principal(self, key: str) -> tuple[bool, Principal | None]:
        """(True, the key's principal or None) when the cache knows the key, else (False, None):
        lets the event loop answer from memory and leave the database to a thread."""
        cached = self._keys.get(hash_key(key))
        if cached is not None and self._fresh(cached[0], cached[1]):
            return True, cached[2]
        return False, None

    def cached_keys_exist(self) -> bool | None:
        at, epoch, exist = self._keys_exist
        return exist if self._fresh(at, epoch) else None

    def principal_for_key(self, key: str) -> Principal | None:
        """The key's principal (revoked ones too), cached (see `_fresh`)."""
        digest = hash_key(key)
        cached = self._keys.get(digest)
        if cached is not None and self._fresh(cached[0], cached[1]):
            return cached[2]
        now, epoch = time.monotonic(), self._epoch()  # read before the row: a change after it shows
        principal = self.store.principal_by_hash(digest)
        if len(self._keys) > 10000:
            self._keys.clear()
        self._keys[digest] = (now, epoch, principal)
        return principal

    def keys_exist(self) -> bool:
        cached = self.cached_keys_exist()
        if cached is not None:
            return cached
        now, epoch = time.monotonic(), self._epoch()
        exist = self.store.keys_exist()
        self._keys_exist = (now, epoch, exist)
        return exist

    def local(self) -> Principal:
        if self.local_principal is None:
            self.local_principal = self.store.ensure_local_principal()
        return self.local_principal

    # --- audio in ---------------------------------------------------------------------------------

    def _accept_file(
        self,
        principal: Principal,
        tmp: Path,
        *,
        filename: str,
        content_type: str | None,
        source: str,
        source_url: str | None,
    ) -> AudioRecord:
        """Decode the file at `tmp`, then keep it as a new audio; the temp file is consumed either way."""
        filename = clean_filename(filename)
        try:
            size = tmp.stat().st_size
            if size == 0:
                raise ApiError(400, "bad_request", f"{filename}: the file is empty (0 bytes)")
            try:
                audio = scan_audio(tmp, limits=self.settings.decode_limits())
            except AudioTooLongError as exc:
                raise ApiError(413, "too_long", f"{filename}: {str(exc).split(': ', 1)[-1]}") from None
            except AudioError as exc:
                err = library_error(exc)
                raise ApiError(err.status_code, err.code, err.message.replace(str(tmp), filename)) from None
            audio_id = new_id()
            self.storage.put_file(audio_key(audio_id), tmp)
        finally:
            tmp.unlink(missing_ok=True)
        guessed = clean_content_type(content_type)
        guessed = guessed or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        now = time.time()
        record = AudioRecord(
            id=audio_id,
            owner_id=principal.id,
            filename=filename,
            title=Path(filename).stem or filename,
            content_type=guessed,
            size=size,
            duration=round(audio.duration, 6),
            sample_rate=audio.sample_rate,
            channels=1,
            source=source,
            source_url=source_url,
            storage_key=audio_key(audio_id),
            created_at=now,
            expires_at=now + self.settings.result_ttl_days * 86400,
        )
        return self.store.add_audio(record)

    def accept_stream(
        self, principal: Principal, stream: BinaryIO, *, filename: str, content_type: str | None
    ) -> AudioRecord:
        """Copy an uploaded stream to storage (capped at `max_upload_bytes`), decode it, record it."""
        tmp = self.storage.temp_file()
        total = 0
        cap = self.settings.max_upload_bytes
        try:
            with tmp.open("wb") as out:
                while chunk := stream.read(_CHUNK):
                    total += len(chunk)
                    if total > cap:
                        raise ApiError(413, "too_large", f"upload exceeds the {cap} byte limit")
                    out.write(chunk)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return self._accept_file(
            principal, tmp, filename=filename, content_type=content_type, source="upload", source_url=None
        )

    def accept_url(self, principal: Principal, url: str) -> AudioRecord:
        """Download `url` (guarded, capped), decode it, record it."""
        try:
            check_destination(url, allow_private=self.settings.allow_private_urls)
        except BlockedAddressError as exc:
            raise ApiError(400, "bad_request", str(exc)) from None
        tmp = self.storage.temp_file()
        cap = self.settings.max_upload_bytes
        content_type = None
        try:
            with fetch_stream(
                url,
                allow_private=self.settings.allow_private_urls,
                timeout=self.settings.fetch_timeout_s,
                transport=self.fetch_transport,
            ) as response:
                if response.status_code != 200:
                    raise ApiError(400, "bad_request", f"fetching {url} answered HTTP {response.status_code}")
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > cap:
                    raise ApiError(413, "too_large", f"{url} is {declared} bytes; the limit is {cap}")
                content_type = response.headers.get("content-type", "").split(";")[0].strip() or None
                total = 0
                with tmp.open("wb") as out:
                    for chunk in response.iter_bytes(_CHUNK):
                        total += len(chunk)
                        if total > cap:
                            raise ApiError(413, "too_large", f"{url} exceeds the {cap} byte limit")
                        out.write(chunk)
                final_url = str(response.url)
        except BlockedAddressError as exc:
            tmp.unlink(missing_ok=True)
            raise ApiError(400, "bad_request", str(exc)) from None
        except httpx.HTTPError as exc:
            tmp.unlink(missing_ok=True)
            raise ApiError(
                400, "bad_request", f"could not fetch {url}: {type(exc).__name__}: {exc}"
            ) from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        name = Path(httpx.URL(final_url).path).name or "audio"
        return self._accept_file(
            principal, tmp, filename=name, content_type=content_type, source="url", source_url=url
        )

    def get_audio(self, principal: Principal, audio_id: str) -> AudioRecord:
        audio = self.store.peek_audio(audio_id, principal.id) if audio_id else None
        if audio is None:
            raise not_found("audio", audio_id)
        if audio.purged_at is not None or audio.expires_at <= time.time():
            raise ApiError(410, "expired", f"audio {show_id(audio_id)} expired and was deleted")
        return audio

    def find_audio(self, principal: Principal, audio_id: str | None, task_id: str | None) -> AudioRecord:
        """kie's audio: `audio_id` when given (404 unless it is the caller's), else the upload whose id
        came as `task_id`."""
        ident = audio_id or task_id
        if not ident:
            raise ApiError(404, "not_found", "no audio named: give audioId or taskId")
        if self.store.get_audio(ident, principal.id) is None:
            raise ApiError(404, "not_found", f"no audio with id {show_id(ident)}")
        return self.get_audio(principal, ident)

    def delete_audio(self, principal: Principal, audio_id: str) -> None:
        """Delete an upload (or a stem) and its files; its signed links answer 404 from then on."""
        audio = self.store.delete_audio(audio_id, principal.id)
        if audio is None:
            raise not_found("audio", audio_id)
        self.storage.delete_prefix(audio_prefix(audio.id))

    def audio_file(self, audio: AudioRecord) -> Path | BinaryIO:
        path = self.storage.local_path(audio.storage_key)
        if path is not None and path.is_file():
            return path
        try:
            return self.storage.open(audio.storage_key)
        except StorageError:
            raise ApiError(410, "expired", f"audio {show_id(audio.id)} is no longer stored") from None

    # --- tasks ------------------------------------------------------------------------------------

    def check_callback(self, url: str | None) -> str | None:
        if url is None or url == "":
            return None
        try:
            check_destination(url, allow_private=self.settings.allow_private_urls)
        except BlockedAddressError as exc:
            raise ApiError(400, "bad_request", f"callback: {exc}") from None
        return url

    def create_task(
        self,
        principal: Principal,
        *,
        kind: TaskKind,
        dialect: str,
        audio: AudioRecord,
        request: dict[str, Any],
        base_url: str,
        stem: str = "auto",
        quantize: bool = False,
        mode: str | None = None,
        callback_url: str | None = None,
        input_ids: list[str] | None = None,
        parent_task_id: str | None = None,
    ) -> TaskRecord:
        now = time.time()
        task = TaskRecord(
            id=new_id(),
            owner_id=principal.id,
            kind=kind,
            dialect=dialect,
            state=TaskState.QUEUED,
            stage="queued",
            progress=0.0,
            audio_id=audio.id,
            filename=audio.filename,
            input_ids=list(input_ids or [audio.id]),
            stem=stem,
            quantize=quantize,
            mode=mode,
            parent_task_id=parent_task_id,
            request=request,
            trace_id=str(uuid.uuid4()),
            callback_url=self.check_callback(callback_url),
            base_url=self.settings.public_url.rstrip("/")
            if self.settings.public_url
            else base_url.rstrip("/"),
            created_at=now,
            expires_at=now + self.settings.result_ttl_days * 86400,
            attempts=0,
        )
        self.store.add_task(task)
        if self.runner is not None:
            try:
                self.runner.submit(task)
            except Exception as exc:  # noqa: BLE001 - any broker failure: the task is withdrawn, 503
                logger.warning("could not queue task %s: %s", task.id, exc)
                self.store.delete_task(task.id, principal.id)
                raise ApiError(
                    503,
                    "busy",
                    f"the job queue is unavailable ({type(exc).__name__}); retry shortly",
                    headers={"retry-after": "5"},
                ) from None
        return task

    def create_separation(
        self,
        principal: Principal,
        *,
        dialect: str,
        audio: AudioRecord,
        request: dict[str, Any],
        base_url: str,
        mode: str,
        callback_url: str | None = None,
    ) -> TaskRecord:
        """Queue a separation once a backend can serve `mode` (SeparationUnavailableError otherwise)."""
        plan_separation(mode)
        return self.create_task(
            principal,
            kind=TaskKind.SEPARATE,
            dialect=dialect,
            audio=audio,
            request=request,
            base_url=base_url,
            mode=mode,
            callback_url=callback_url,
        )

    def find_or_create_transcription(
        self,
        principal: Principal,
        *,
        dialect: str,
        audio: AudioRecord,
        request: dict[str, Any],
        base_url: str,
    ) -> TaskRecord:
        """The newest live transcription of `audio` in this dialect, or a new one (idempotent re-requests)."""
        task = self.store.find_task(
            principal.id, kind=TaskKind.TRANSCRIBE, audio_id=audio.id, dialect=dialect
        )
        if task is not None:
            return task
        return self.create_task(
            principal,
            kind=TaskKind.TRANSCRIBE,
            dialect=dialect,
            audio=audio,
            request=request,
            base_url=base_url,
        )

    def create_stems_transcription(
        self,
        principal: Principal,
        *,
        dialect: str,
        task_id: str,
        audio_id: str | None,
        request: dict[str, Any],
        base_url: str,
        callback_url: str | None,
    ) -> TaskRecord:
        """MIDI of a finished separation's stems (all, or the one `audio_id`), else of the audio named
        by `audio_id` or `task_id` (kie's `midi/generate`)."""
        parent = self.store.get_task(task_id, principal.id)
        if parent is None or parent.kind is not TaskKind.SEPARATE:
            audio = self.find_audio(principal, audio_id, task_id)
            inputs, parent_id = [audio.id], None
        else:
            if self.is_expired(parent):
                raise ApiError(410, "expired", f"separation task {parent.id!r} expired")
            if parent.state is not TaskState.SUCCEEDED:
                raise ApiError(
                    409,
                    "conflict",
                    f"separation task {parent.id!r} is {parent.state.value}; wait until it succeeds",
                )
            stems = [s["audio_id"] for s in (parent.output or {}).get("stems", [])]
            if audio_id is not None and audio_id not in stems:
                raise ApiError(
                    404, "not_found", f"audioId {show_id(audio_id)} is not a stem of task {parent.id!r}"
                )
            inputs = [audio_id] if audio_id else stems
            audio = self.get_audio(principal, inputs[0])
            parent_id = parent.id
        return self.create_task(
            principal,
            kind=TaskKind.TRANSCRIBE,
            dialect=dialect,
            audio=audio,
            request=request,
            base_url=base_url,
            callback_url=callback_url,
            input_ids=inputs,
            parent_task_id=parent_id,
        )

    def task_or_audio(self, principal: Principal, ident: str) -> tuple[TaskRecord | None, AudioRecord | None]:
        """(the caller's task `ident`, its audio) or (None, the caller's audio `ident`); 404 for neither."""
        task = self.store.get_task(ident, principal.id)
        if task is not None:
            return task, self.store.get_audio(task.audio_id, principal.id)
        if self.store.get_audio(ident, principal.id) is None:
            raise not_found("task", ident)
        return None, self.get_audio(principal, ident)

    def get_tasks(self, principal: Principal, task_ids: list[str]) -> list[TaskRecord]:
        return self.store.get_tasks(task_ids, principal.id)

    def list_tasks(self, principal: Principal, *, limit: int, kind: TaskKind) -> list[TaskRecord]:
        return self.store.list_tasks(principal.id, limit=limit, kind=kind)

    def delete_task(self, principal: Principal, task_id: str) -> None:
        """Delete a task and its files (a running task finishes, but its result is discarded)."""
        deleted = self.store.delete_task(task_id, principal.id)
        if deleted is None:
            raise not_found("task", task_id)
        task, stems = deleted
        self.forget(task.id)
        for stem_id in stems:  # a separation's stems go with it (their links answer 404)
            self.storage.delete_prefix(audio_prefix(stem_id))

    def deliveries(self, task: TaskRecord) -> list[WebhookDelivery]:
        return self.store.deliveries_for_task(task.id)

    def get_task(self, principal: Principal, task_id: str) -> TaskRecord:
        task = self.store.peek_task(task_id, principal.id) if task_id else None
        if task is None:
            raise not_found("task", task_id)
        return task

    async def wait(self, task: TaskRecord, timeout: float) -> TaskRecord:
        """Poll the store until the task is finished or `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while task.state not in FINAL_STATES and time.monotonic() < deadline:
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 1.5, 0.5)
            latest = await asyncio.to_thread(self.store.peek_task, task.id, None)
            task = latest or task
        return task

    @staticmethod
    def is_expired(task: TaskRecord) -> bool:
        return task.state is TaskState.EXPIRED or task.purged_at is not None or task.expires_at <= time.time()

    def state_of(self, task: TaskRecord) -> TaskState:
        return TaskState.EXPIRED if self.is_expired(task) else task.state

    def result(self, task: TaskRecord) -> dict[str, Any] | None:
        """The stored Result dict of a succeeded transcription (cached; results never change)."""
        if (
            task.kind is not TaskKind.TRANSCRIBE
            or task.state is not TaskState.SUCCEEDED
            or self.is_expired(task)
        ):
            return None
        with self._lock:
            cached = self._results.get(task.id)
            if cached is not None:
                self._results.move_to_end(task.id)
                return cached
        import json

        try:
            data = json.loads(self.storage.get_bytes(result_key(task.id, "result.json")))
        except StorageError:
            return None
        with self._lock:
            self._results[task.id] = data
            while len(self._results) > 256:
                self._results.popitem(last=False)
        return data

    def require_result(self, task: TaskRecord) -> dict[str, Any]:
        if self.is_expired(task):
            raise ApiError(
                410, "expired", f"task {task.id!r} expired; its results were deleted", task_id=task.id
            )
        if task.state is TaskState.FAILED:
            raise ApiError(
                409, "task_failed", f"task {task.id!r} failed: {task.error_message}", task_id=task.id
            )
        result = self.result(task)
        if result is None:
            raise ApiError(
                409, "not_ready", f"task {task.id!r} is {task.state}; no result yet", task_id=task.id
            )
        return result

    def artifact(self, task: TaskRecord, name: str) -> Path | BinaryIO:
        self.require_result(task)
        key = result_key(task.id, name)
        path = self.storage.local_path(key)
        if path is not None and path.is_file():
            return path
        try:
            return self.storage.open(key)
        except StorageError:
            raise ApiError(410, "expired", f"task {task.id!r}: {name} is no longer stored") from None

    # --- sheet music (made on first request, then stored; see jobs/score.py) --------------------------

    @staticmethod
    def score_title(task: TaskRecord) -> str:
        return task.filename.rsplit(".", 1)[0] or "stemscribe"

    def score_pages(self, task: TaskRecord) -> int:
        """How many SVG pages a finished transcription's score has (engraving them the first time)."""
        self.require_result(task)
        return score_files.page_count(self.storage, task.id, title=self.score_title(task))

    def score_file(self, task: TaskRecord, what: str, page: int = 1) -> tuple[Path | BinaryIO, str, str]:
        """(file, media type, filename) of a finished transcription's score: "musicxml", "pdf", or SVG
        page `page` ("svg")."""
        self.require_result(task)
        title = self.score_title(task)
        if what == "musicxml":
            score_files.musicxml(self.storage, task.id, title=title)
            name, media, filename = score_files.MUSICXML, MUSICXML_TYPE, f"{title}.musicxml"
        elif what == "pdf":
            name = score_files.ensure_pdf(self.storage, task.id, title=title)
            media, filename = "application/pdf", f"{title}.pdf"
        else:
            pages = self.score_pages(task)
            if not 1 <= page <= pages:
                raise ApiError(404, "not_found", f"the score of task {task.id!r} has pages 1 to {pages}")
            name, media, filename = score_files.page_name(page), "image/svg+xml", f"{title}-{page}.svg"
        return self.artifact(task, name), media, filename

    def forget(self, task_id: str) -> None:
        with self._lock:
            self._results.pop(task_id, None)
        self.storage.delete_prefix(task_prefix(task_id))

    # --- signed download links --------------------------------------------------------------------

    def sign(self, kind: str, ident: str, expires: int) -> str:
        mac = hmac.new(self.secret, f"{kind}:{ident}:{expires}".encode(), hashlib.sha256).hexdigest()
        return mac[:32]

    def link(self, base_url: str, kind: str, ident: str, expires: float) -> str:
        """An absolute link that downloads without a token until `expires` (epoch seconds)."""
        e = int(expires)
        return f"{base_url.rstrip('/')}/files/{kind}/{ident}?e={e}&s={self.sign(kind, ident, e)}"

    def check_link(self, kind: str, ident: str, e: int, s: str) -> None:
        if not hmac.compare_digest(self.sign(kind, ident, e).encode(), s.encode("utf-8", "replace")):
            raise ApiError(403, "forbidden", "invalid download signature")
        if e <= time.time():
            raise ApiError(410, "expired", "this download link expired")

    def download(self, kind: str, ident: str) -> tuple[Path | BinaryIO, str, str]:
        """(file, media type, filename) behind a signed link: an audio, a task's MIDI ("midi", "midiq"),
        or its score ("musicxml", "pdf", and "svg" with ident `<task id>.<page>`)."""
        if kind in SCORE_KINDS:
            task_id, _, page = ident.rpartition(".") if kind == "svg" else (ident, "", "1")
            task = self.store.get_task(task_id, None)
            if task is None or not page.isdigit():
                raise not_found("task", ident)
            return self.score_file(task, kind, int(page))
        if kind == "audio":
            audio = self.store.get_audio(ident, None)
            if audio is None:
                raise not_found("audio", ident)
            self._check_owner_active(audio.owner_id)
            if audio.purged_at is not None:
                raise ApiError(410, "expired", f"audio {show_id(ident)} expired and was deleted")
            return self.audio_file(audio), audio.content_type, clean_filename(audio.filename)
        task = self.store.get_task(ident, None)
        if task is None:
            raise not_found("task", ident)
        self._check_owner_active(task.owner_id)
        quantized = kind == "midiq"
        source = self.artifact(task, "result.quantized.mid" if quantized else "result.mid")
        filename = f"{task.filename.rsplit('.', 1)[0] or task.id}{'.quantized' if quantized else ''}.mid"
        return source, "audio/midi", filename

    def _check_owner_active(self, owner_id: str) -> None:
        """Signed links of a revoked key stop working (403), like the key itself."""
        owner = self.store.get_principal(owner_id)
        if owner is not None and owner.revoked_at is not None:
            raise ApiError(403, "forbidden", "the API key that owns this file was revoked")

    def health(self) -> dict[str, Any]:
        """Liveness and queue depth, nothing per key: `{"status": "ok", "workers", "queue": {queued,
        running}}`."""
        counts = self.store.count_tasks()
        return {
            "status": "ok",
            "workers": self.runner.alive() if self.runner is not None else 0,
            "queue": {"queued": counts.get("queued", 0), "running": counts.get("running", 0)},
        }

    # --- expiry -----------------------------------------------------------------------------------

    def purge(self, now: float | None = None) -> tuple[int, int]:
        """Delete the files of expired tasks and audios; (tasks, audios) purged."""
        now = time.time() if now is None else now
        n_tasks = n_audios = 0
        while True:
            tasks, audios = self.store.expired(now)
            if not tasks and not audios:
                return n_tasks, n_audios
            for t in tasks:
                self.forget(t.id)
            for a in audios:
                self.storage.delete_prefix(audio_prefix(a.id))
            self.store.mark_purged([t.id for t in tasks], [a.id for a in audios], now)
            n_tasks += len(tasks)
            n_audios += len(audios)
