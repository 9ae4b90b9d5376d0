"""The job store: API keys, audios, tasks and pending webhook deliveries.

`SqlJobStore` is what the HTTP layer, the workers and the webhook sender use, with SQLAlchemy 2 on
SQLite (default) or PostgreSQL. Every change of a task's state happens here (`claim_task`,
`claim_task_by_id`, `finish_task`, `fail_queued`, `requeue_stale`, `mark_purged`). Records come back
detached: read their attributes freely, change them only through the store.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar, cast

from sqlalchemy import JSON, Boolean, Engine, Table, create_engine, delete, event, func, select, update
from sqlalchemy import Enum as SqlEnum
from sqlalchemy.engine import CursorResult, make_url
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from stemscribe.jobs.models import (
    AudioRecord,
    Base,
    DeliveryState,
    Principal,
    TaskKind,
    TaskRecord,
    TaskState,
    WebhookDelivery,
)

LOCAL_PRINCIPAL = "local"
KEY_PREFIX = "sk_"


M = TypeVar("M", bound=Base)
R = TypeVar("R")

DATABASE_DOWN = (OperationalError, InterfaceError)
"""Errors of a database that is restarting or unreachable (as opposed to a refused statement)."""


def retry_while_down(call: Callable[[], R], *, within_s: float, pause_s: float = 1.0) -> R:
    """`call()`, called again while the database is down (`DATABASE_DOWN`), for up to `within_s`
    seconds; then its last error. For writes that must not be lost to a database restart: a finished
    job's outcome, a sent callback's record."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            return call()
        except DATABASE_DOWN:
            if time.monotonic() + pause_s > deadline:
                raise
            time.sleep(pause_s)


@dataclass(frozen=True, slots=True)
class _PeekPlan:
    """One table's peek query and which of its columns need converting from the DBAPI's values."""

    sql: str
    cols: list[str]
    json_cols: set[str]
    bool_cols: set[str]
    enum_cols: dict[str, type[Enum]]


def new_id() -> str:
    return str(uuid.uuid4())


def hash_key(key: str) -> str:
    """sha256 of an API key; keys are 256-bit random, so a fast hash is enough."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_webhook_secret() -> str:
    import base64

    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


MAX_ID_LENGTH = 40
"""Every id column is VARCHAR(40); longer ids (or ids with a NUL byte) name nothing."""


def storable_id(ident: object) -> bool:
    """Whether `ident` could be a stored id: a non-empty string of at most 40 characters, no NUL.

    Lookups check this first, so a hostile id answers "not found" on SQLite and PostgreSQL alike
    instead of reaching the database (where PostgreSQL refuses NUL bytes and over-long values).
    """
    return isinstance(ident, str) and 0 < len(ident) <= MAX_ID_LENGTH and "\x00" not in ident


def _private_file(path: str) -> None:
    """Create the SQLite file readable by this user only (its journal files inherit the mode)."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.chmod(path + suffix, 0o600)


def make_engine(url: str, *, busy_timeout_s: float = 5.0) -> Engine:
    """An engine for `url`. SQLite gets WAL mode and a busy timeout so several processes can share it;
    PostgreSQL a lock_timeout of the same length. A write that waits longer raises OperationalError,
    which the API answers with 503 and Retry-After (`service.errors.store_busy`).
    """
    ms = max(1, int(busy_timeout_s * 1000))
    if url.startswith("sqlite"):
        _private_file(make_url(url).database or "")

        def pragmas(dbapi_connection: Any, _record: Any) -> None:
            cur = dbapi_connection.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={ms}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": busy_timeout_s}, pool_size=8
        )
        event.listen(engine, "connect", pragmas)
        return engine
    engine = create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)
    if engine.dialect.name == "postgresql":

        def lock_timeout(dbapi_connection: Any, _record: Any) -> None:
            cur = dbapi_connection.cursor()
            cur.execute(f"SET lock_timeout = {ms}")
            cur.close()
            dbapi_connection.commit()

        event.listen(engine, "connect", lock_timeout)
    return engine


class Claim(str, Enum):
    """What `claim_task_by_id` found (a queue message names a task; the database decides its fate)."""

    CLAIMED = "claimed"
    """The task is now this worker's to run."""
    BUSY = "busy"
    """Another worker holds the task and its lease is live: try again once it may have run out."""
    GAVE_UP = "gave_up"
    """Its workers died `max_attempts` times: it was failed (and its failure callback queued)."""
    FINISHED = "finished"
    """Already succeeded, failed or expired (a redelivered message): nothing to do."""
    MISSING = "missing"
    """No such task (deleted)."""


class SqlJobStore:
    """The job store on a SQLAlchemy engine. Run the migrations (`upgrade_database`) before use."""

    def __init__(
        self, url_or_engine: str | Engine, *, webhook_attempts: int = 5, busy_timeout_s: float = 5.0
    ) -> None:
        self.webhook_attempts = max(1, webhook_attempts)
        self.engine = (
            make_engine(url_or_engine, busy_timeout_s=busy_timeout_s)
            if isinstance(url_or_engine, str)
            else url_or_engine
        )
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._peek_cache: dict[type[Base], _PeekPlan] = {}
        self.on_keys_changed: Callable[[], None] | None = None
        """Called after a key is created or revoked (scale-out: tells every API node's key cache)."""

    def _keys_changed(self) -> None:
        if self.on_keys_changed is not None:
            self.on_keys_changed()

    def _peek_sql(self, model: type[Base]) -> _PeekPlan:
        table = cast(Table, model.__table__)
        cols = [c.name for c in table.columns]
        json_cols = {c.name for c in table.columns if isinstance(c.type, JSON)}
        bool_cols = {c.name for c in table.columns if isinstance(c.type, Boolean)}
        enum_cols = {
            c.name: c.type.enum_class
            for c in table.columns
            if isinstance(c.type, SqlEnum) and c.type.enum_class is not None
        }
        mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        sql = f"SELECT {', '.join(cols)} FROM {table.name} WHERE id = {mark}"
        return _PeekPlan(sql, cols, json_cols, bool_cols, enum_cols)

    def _peek(self, model: type[M], ident: str) -> M | None:
        """A transient copy of one row by id, read without the ORM's session (the hot path of polls)."""
        if not storable_id(ident):
            return None
        plan = self._peek_cache.get(model) or self._peek_cache.setdefault(model, self._peek_sql(model))
        with self.engine.connect() as conn:
            cursor = conn.connection.cursor()  # the DBAPI cursor: no result metadata to build per call
            try:
                cursor.execute(plan.sql, (ident,))
                row = cursor.fetchone()
            finally:
                cursor.close()
            conn.rollback()
        if row is None:
            return None
        values = dict(zip(plan.cols, row, strict=True))
        for name in plan.json_cols:
            if isinstance(values[name], str):
                values[name] = json.loads(values[name])
        for name in plan.bool_cols:
            if values[name] is not None:
                values[name] = bool(values[name])
        for name, enum in plan.enum_cols.items():
            if values[name] is not None:
                values[name] = enum(values[name])
        return model(**values)

    def peek_task(self, task_id: str, owner_id: str | None) -> TaskRecord | None:
        """Like `get_task`, several times faster; a transient record, not attached to any session."""
        t = self._peek(TaskRecord, task_id)
        if t is None or (owner_id is not None and t.owner_id != owner_id):
            return None
        return t

    def peek_audio(self, audio_id: str, owner_id: str | None) -> AudioRecord | None:
        a = self._peek(AudioRecord, audio_id)
        if a is None or (owner_id is not None and a.owner_id != owner_id):
            return None
        return a

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as s, s.begin():
            yield s

    def close(self) -> None:
        self.engine.dispose()

    # --- keys -------------------------------------------------------------------------------------

    def create_key(self, name: str) -> tuple[Principal, str]:
        """A new key: the record (holding the key's hash) and the key itself, shown once."""
        if not name.strip():
            raise ValueError("a key needs a non-empty name")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        principal = Principal(
            id="key_" + secrets.token_hex(8),
            name=name.strip(),
            key_prefix=key[:10],
            key_hash=hash_key(key),
            webhook_secret=new_webhook_secret(),
            created_at=time.time(),
        )
        with self.session() as s:
            s.add(principal)
        self._keys_changed()
        return principal, key

    def list_keys(self) -> list[Principal]:
        with self.session() as s:
            rows = s.scalars(
                select(Principal).where(Principal.key_hash.is_not(None)).order_by(Principal.created_at)
            )
            return list(rows)

    def revoke_key(self, ident: str) -> Principal | None:
        """Revoke the key with this id, name or key prefix."""
        p = self._revoke_key(ident)
        if p is not None:
            self._keys_changed()
        return p

    def _revoke_key(self, ident: str) -> Principal | None:
        with self.session() as s:
            rows = list(
                s.scalars(
                    select(Principal).where(
                        Principal.key_hash.is_not(None),
                        (Principal.id == ident) | (Principal.name == ident) | (Principal.key_prefix == ident),
                    )
                )
            )
            if len(rows) != 1:
                return None
            now = time.time()
            p = rows[0]
            p.revoked_at = p.revoked_at or now
            # Its queued work is cancelled (never runs, never calls back), its pending callbacks dropped.
            s.execute(
                update(TaskRecord)
                .where(TaskRecord.owner_id == p.id, TaskRecord.state == TaskState.QUEUED)
                .values(
                    state=TaskState.FAILED,
                    error_code="key_revoked",
                    error_message="cancelled: the API key was revoked",
                    finished_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            s.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.owner_id == p.id, WebhookDelivery.state == DeliveryState.PENDING)
                .values(state=DeliveryState.FAILED, last_error="the API key was revoked")
                .execution_options(synchronize_session=False)
            )
            return p

    def principal_for_key(self, key: str) -> Principal | None:
        with self.session() as s:
            p = s.scalar(select(Principal).where(Principal.key_hash == hash_key(key)))
            return p if p is not None and p.revoked_at is None else None

    def principal_by_hash(self, key_hash: str) -> Principal | None:
        """The principal whose key hashes to `key_hash`, revoked or not."""
        with self.session() as s:
            return s.scalar(select(Principal).where(Principal.key_hash == key_hash))

    def get_principal(self, principal_id: str) -> Principal | None:
        with self.session() as s:
            return s.get(Principal, principal_id)

    def ensure_local_principal(self) -> Principal:
        """The `local` principal, created by the first caller (API nodes starting at once race here:
        the one whose insert loses reads the winner's)."""
        for _ in range(2):
            try:
                with self.session() as s:
                    p = s.get(Principal, LOCAL_PRINCIPAL)
                    if p is None:
                        p = Principal(
                            id=LOCAL_PRINCIPAL,
                            name="local",
                            webhook_secret=new_webhook_secret(),
                            created_at=time.time(),
                        )
                        s.add(p)
                    return p
            except IntegrityError:
                continue
        raise RuntimeError("the local principal could be neither read nor created")

    def keys_exist(self) -> bool:
        """True once any key was ever created (revoking every key does not reopen keyless access)."""
        with self.session() as s:
            return bool(
                s.scalar(select(func.count()).select_from(Principal).where(Principal.key_hash.is_not(None)))
            )

    # --- audios -----------------------------------------------------------------------------------

    def add_audio(self, audio: AudioRecord) -> AudioRecord:
        with self.session() as s:
            s.add(audio)
        return audio

    def put_audio(self, audio: AudioRecord) -> AudioRecord:
        """Insert or replace an audio by id (a separation run again writes the same stems)."""
        with self.session() as s:
            s.merge(audio)
        return audio

    def get_audio(self, audio_id: str, owner_id: str | None) -> AudioRecord | None:
        if not storable_id(audio_id):
            return None
        with self.session() as s:
            a = s.get(AudioRecord, audio_id)
            if a is None or (owner_id is not None and a.owner_id != owner_id):
                return None
            return a

    # --- tasks ------------------------------------------------------------------------------------

    def add_task(self, task: TaskRecord) -> TaskRecord:
        """Insert a new task (a Core insert: submissions are a hot path); `task` stays transient."""
        table = cast(Table, TaskRecord.__table__)
        values = {c.name: getattr(task, c.key) for c in table.columns}
        with self.engine.begin() as conn:
            conn.execute(table.insert(), values)
        return task

    def get_task(self, task_id: str, owner_id: str | None) -> TaskRecord | None:
        if not storable_id(task_id):
            return None
        with self.session() as s:
            t = s.get(TaskRecord, task_id)
            if t is None or (owner_id is not None and t.owner_id != owner_id):
                return None
            return t

    def get_tasks(self, task_ids: Sequence[str], owner_id: str) -> list[TaskRecord]:
        task_ids = [i for i in task_ids if storable_id(i)]
        if not task_ids:
            return []
        with self.session() as s:
            rows = {
                t.id: t
                for t in s.scalars(
                    select(TaskRecord).where(
                        TaskRecord.id.in_(list(task_ids)), TaskRecord.owner_id == owner_id
                    )
                )
            }
        return [rows[i] for i in task_ids if i in rows]

    def list_tasks(self, owner_id: str, *, limit: int, kind: TaskKind | None = None) -> list[TaskRecord]:
        q = select(TaskRecord).where(TaskRecord.owner_id == owner_id)
        if kind is not None:
            q = q.where(TaskRecord.kind == kind)
        q = q.order_by(TaskRecord.created_at.desc(), TaskRecord.id).limit(limit)
        with self.session() as s:
            return list(s.scalars(q))

    def find_task(self, owner_id: str, *, kind: TaskKind, audio_id: str, dialect: str) -> TaskRecord | None:
        """The newest task of this kind on this audio that is not failed (for idempotent re-requests)."""
        q = (
            select(TaskRecord)
            .where(
                TaskRecord.owner_id == owner_id,
                TaskRecord.audio_id == audio_id,
                TaskRecord.kind == kind,
                TaskRecord.dialect == dialect,
                TaskRecord.state.in_([TaskState.QUEUED, TaskState.RUNNING, TaskState.SUCCEEDED]),
                TaskRecord.expires_at > time.time(),
            )
            .order_by(TaskRecord.created_at.desc())
            .limit(1)
        )
        with self.session() as s:
            return s.scalar(q)

    def delete_task(self, task_id: str, owner_id: str) -> tuple[TaskRecord, list[str]] | None:
        """Delete a task, its deliveries and, for a separation, the stems it made: (task, stem ids)."""
        if not storable_id(task_id):
            return None
        with self.session() as s:
            t = s.get(TaskRecord, task_id)
            if t is None or t.owner_id != owner_id:
                return None
            stems = [str(x["audio_id"]) for x in (t.output or {}).get("stems", []) if x.get("audio_id")]
            if t.kind is TaskKind.SEPARATE and stems:
                s.execute(
                    delete(AudioRecord).where(AudioRecord.id.in_(stems), AudioRecord.owner_id == owner_id)
                )
            else:
                stems = []
            s.execute(delete(WebhookDelivery).where(WebhookDelivery.task_id == task_id))
            s.delete(t)
            return t, stems

    def delete_audio(self, audio_id: str, owner_id: str) -> AudioRecord | None:
        """Delete an audio's record (its files are the caller's to delete); None if not the owner's."""
        if not storable_id(audio_id):
            return None
        with self.session() as s:
            a = s.get(AudioRecord, audio_id)
            if a is None or a.owner_id != owner_id:
                return None
            s.delete(a)
            return a

    def claim_task(self, worker_id: str, lease_s: float) -> TaskRecord | None:
        """Take the oldest queued task for `worker_id`, or None when the queue is empty."""
        for _ in range(5):
            with self.session() as s:
                candidate = s.scalar(
                    select(TaskRecord.id)
                    .where(TaskRecord.state == TaskState.QUEUED)
                    .order_by(TaskRecord.created_at)
                    .limit(1)
                )
                if candidate is None:
                    return None
                now = time.time()
                claimed = cast(
                    CursorResult[Any],
                    s.execute(
                        update(TaskRecord)
                        .where(TaskRecord.id == candidate, TaskRecord.state == TaskState.QUEUED)
                        .values(
                            state=TaskState.RUNNING,
                            stage="starting",
                            worker_id=worker_id,
                            lease_until=now + lease_s,
                            started_at=func.coalesce(TaskRecord.started_at, now),
                            attempts=TaskRecord.attempts + 1,
                        )
                        .execution_options(synchronize_session=False)
                    ),
                ).rowcount
                if claimed == 1:
                    return s.get(TaskRecord, candidate, populate_existing=True)
        return None

    def claim_task_by_id(
        self,
        task_id: str,
        worker_id: str,
        lease_s: float,
        *,
        max_attempts: int,
        dead_workers: Callable[[list[str]], list[str]] = lambda _ids: [],
    ) -> tuple[Claim, TaskRecord | None]:
        """Take the task a queue message names, for `worker_id`: a queued task, or a running one whose
        worker is gone (its lease ran out, or `dead_workers` names it). Each start counts an attempt;
        a task already started `max_attempts` times fails instead (`Claim.GAVE_UP`). A task that
        `worker_id` itself holds but has stopped running (`dead_workers` names it: the database went
        away mid-task) is taken up again without counting a start: no worker died."""
        if not storable_id(task_id):
            return Claim.MISSING, None
        with self.session() as s:
            t = s.get(TaskRecord, task_id, with_for_update=True)
            if t is None:
                return Claim.MISSING, None
            now = time.time()
            if t.state not in (TaskState.QUEUED, TaskState.RUNNING):
                return Claim.FINISHED, t
            if t.state is TaskState.RUNNING:
                holder = t.worker_id or ""
                gone = bool(holder) and holder in dead_workers([holder])
                if holder == worker_id:
                    if not gone:  # running here, whatever its lease says
                        return Claim.BUSY, t
                    t.stage, t.lease_until = "starting", now + lease_s
                    return Claim.CLAIMED, t
                if not (gone or (t.lease_until or 0.0) < now):
                    return Claim.BUSY, t
                if t.attempts >= max_attempts:
                    t.state, t.finished_at = TaskState.FAILED, now
                    t.worker_id, t.lease_until = None, None
                    t.error_code = "worker_died"
                    t.error_message = f"the worker running this task stopped {t.attempts} times; giving up"
                    if t.callback_url and not self._revoked(s, t.owner_id):
                        s.add(self._delivery_for(t, now))
                    return Claim.GAVE_UP, t
            t.state, t.stage = TaskState.RUNNING, "starting"
            t.worker_id, t.lease_until = worker_id, now + lease_s
            t.started_at = t.started_at or now
            t.attempts = (t.attempts or 0) + 1
            return Claim.CLAIMED, t

    def report_progress(
        self, task_id: str, worker_id: str, stage: str, progress: float, lease_s: float
    ) -> bool:
        """Store stage/progress and extend the lease; False when the task is no longer this worker's."""
        with self.session() as s:
            n = cast(
                CursorResult[Any],
                s.execute(
                    update(TaskRecord)
                    .where(
                        TaskRecord.id == task_id,
                        TaskRecord.worker_id == worker_id,
                        TaskRecord.state == TaskState.RUNNING,
                    )
                    .values(stage=stage, progress=progress, lease_until=time.time() + lease_s)
                    .execution_options(synchronize_session=False)
                ),
            ).rowcount
            return n == 1

    def extend_lease(self, task_id: str, worker_id: str, lease_s: float) -> bool:
        with self.session() as s:
            n = cast(
                CursorResult[Any],
                s.execute(
                    update(TaskRecord)
                    .where(
                        TaskRecord.id == task_id,
                        TaskRecord.worker_id == worker_id,
                        TaskRecord.state == TaskState.RUNNING,
                    )
                    .values(lease_until=time.time() + lease_s)
                    .execution_options(synchronize_session=False)
                ),
            ).rowcount
            return n == 1

    def running_workers(self) -> list[str]:
        with self.session() as s:
            q = select(TaskRecord.worker_id).where(TaskRecord.state == TaskState.RUNNING).distinct()
            return [w for w in s.scalars(q) if w]

    def finish_task(
        self,
        task_id: str,
        worker_id: str,
        *,
        output: dict[str, Any] | None = None,
        error: tuple[str, str] | None = None,
        retry: bool = False,
    ) -> TaskRecord | None:
        """Record the outcome; with a callback URL, queue its webhook in the same transaction.

        `retry` puts the task back in the queue instead (a transient failure). Returns None when the
        task was taken away from this worker meanwhile (its lease ran out).
        """
        with self.session() as s:
            t = s.get(TaskRecord, task_id, with_for_update=True)
            if t is None or t.worker_id != worker_id or t.state is not TaskState.RUNNING:
                return None
            now = time.time()
            t.worker_id = None
            t.lease_until = None
            if retry:
                t.state = TaskState.QUEUED
                t.stage = "queued"
                return t
            t.finished_at = now
            if error is None:
                t.state, t.stage, t.progress, t.output = TaskState.SUCCEEDED, "done", 1.0, output
            else:
                t.state, t.error_code, t.error_message = TaskState.FAILED, error[0], error[1]
                if output is not None:
                    t.output = output
            if t.callback_url and not self._revoked(s, t.owner_id):
                s.add(self._delivery_for(t, now))
            return t

    @staticmethod
    def _revoked(s: Session, owner_id: str) -> bool:
        return s.scalar(select(Principal.revoked_at).where(Principal.id == owner_id)) is not None

    def _delivery_for(self, t: TaskRecord, now: float) -> WebhookDelivery:
        return WebhookDelivery(
            id="msg_" + uuid.uuid4().hex,
            task_id=t.id,
            owner_id=t.owner_id,
            url=t.callback_url or "",
            payload=None,
            state=DeliveryState.PENDING,
            attempts=0,
            max_attempts=self.webhook_attempts,
            next_attempt_at=now,
            created_at=now,
        )

    def fail_queued(self, task_id: str, code: str, message: str) -> TaskRecord | None:
        """Fail a task that never ran (for example its input is gone), queueing its webhook."""
        with self.session() as s:
            t = s.get(TaskRecord, task_id)
            if t is None or t.state not in (TaskState.QUEUED, TaskState.RUNNING):
                return None
            now = time.time()
            t.state, t.error_code, t.error_message, t.finished_at = TaskState.FAILED, code, message, now
            t.worker_id, t.lease_until = None, None
            if t.callback_url:
                s.add(self._delivery_for(t, now))
            return t

    def requeue_stale(self, *, max_attempts: int, dead_workers: Sequence[str] = ()) -> tuple[int, int]:
        """Queue again running tasks whose lease ran out or whose worker is known dead.

        Tasks already started `max_attempts` times fail instead. Returns (requeued, failed).
        """
        requeued, failed = self.requeue_stale_ids(max_attempts=max_attempts, dead_workers=dead_workers)
        return len(requeued), len(failed)

    def requeue_stale_ids(
        self,
        *,
        max_attempts: int,
        dead_workers: Sequence[str] = (),
        send: Callable[[TaskRecord], None] | None = None,
    ) -> tuple[list[TaskRecord], list[TaskRecord]]:
        """`requeue_stale`, answering the tasks themselves: (queued again, failed).

        `send(task)` is called for each task queued again before the change commits (scale-out: the
        message that runs it), so a broker that is down leaves the task as it was, to be swept again,
        instead of queued in the database with no message naming it."""
        now = time.time()
        cond = (TaskRecord.lease_until < now) | (TaskRecord.worker_id.in_(list(dead_workers)))
        requeued: list[TaskRecord] = []
        failed: list[TaskRecord] = []
        with self.session() as s:
            rows = list(s.scalars(select(TaskRecord).where(TaskRecord.state == TaskState.RUNNING, cond)))
            for t in rows:
                t.worker_id, t.lease_until = None, None
                if t.attempts >= max_attempts:
                    t.state, t.finished_at = TaskState.FAILED, now
                    t.error_code = "worker_died"
                    t.error_message = f"the worker running this task stopped {t.attempts} times; giving up"
                    if t.callback_url:
                        s.add(self._delivery_for(t, now))
                    failed.append(t)
                else:
                    t.state, t.stage = TaskState.QUEUED, "queued"
                    requeued.append(t)
            if send is not None:
                s.flush()
                for t in requeued:
                    send(t)
        return requeued, failed

    def count_tasks(self) -> dict[str, int]:
        with self.session() as s:
            rows = s.execute(select(TaskRecord.state, func.count()).group_by(TaskRecord.state)).all()
        return {TaskState(state).value: int(n) for state, n in rows}

    # --- webhooks ---------------------------------------------------------------------------------

    def due_deliveries(self, *, limit: int = 20) -> list[WebhookDelivery]:
        with self.session() as s:
            q = (
                select(WebhookDelivery)
                .where(
                    WebhookDelivery.state == DeliveryState.PENDING,
                    WebhookDelivery.next_attempt_at <= time.time(),
                )
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(limit)
            )
            return list(s.scalars(q))

    def record_delivery(
        self,
        delivery_id: str,
        *,
        payload: str,
        status: int | None,
        error: str | None,
        delivered: bool,
        retry_in: float,
    ) -> WebhookDelivery | None:
        """Store one attempt's outcome; out of attempts (or `retry_in` < 0) marks the delivery failed."""
        with self.session() as s:
            d = s.get(WebhookDelivery, delivery_id)
            if d is None:
                return None
            now = time.time()
            d.payload = payload
            d.attempts += 1
            d.last_status, d.last_error = status, error
            if delivered:
                d.state, d.delivered_at = DeliveryState.DELIVERED, now
            elif d.attempts >= d.max_attempts or retry_in < 0:
                d.state = DeliveryState.FAILED
            else:
                d.next_attempt_at = now + retry_in
            return d

    def claim_delivery(
        self, delivery_id: str, *, hold_s: float, early_s: float = 1.0
    ) -> WebhookDelivery | None:
        """Take a pending delivery that is due (within `early_s`) for one attempt, holding it for
        `hold_s` so no other sender starts it meanwhile; None when it is not pending or not due."""
        if not storable_id(delivery_id):
            return None
        now = time.time()
        with self.session() as s:
            taken = cast(
                CursorResult[Any],
                s.execute(
                    update(WebhookDelivery)
                    .where(
                        WebhookDelivery.id == delivery_id,
                        WebhookDelivery.state == DeliveryState.PENDING,
                        WebhookDelivery.next_attempt_at <= now + early_s,
                    )
                    .values(next_attempt_at=now + hold_s)
                    .execution_options(synchronize_session=False)
                ),
            ).rowcount
            if taken != 1:
                return None
            return s.get(WebhookDelivery, delivery_id, populate_existing=True)

    def overdue_deliveries(self, older_than_s: float, *, limit: int = 100) -> list[WebhookDelivery]:
        """Pending deliveries due more than `older_than_s` ago (their queue message was lost)."""
        with self.session() as s:
            q = (
                select(WebhookDelivery)
                .where(
                    WebhookDelivery.state == DeliveryState.PENDING,
                    WebhookDelivery.next_attempt_at <= time.time() - older_than_s,
                )
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(limit)
            )
            return list(s.scalars(q))

    def deliveries_for_task(self, task_id: str) -> list[WebhookDelivery]:
        with self.session() as s:
            q = (
                select(WebhookDelivery)
                .where(WebhookDelivery.task_id == task_id)
                .order_by(WebhookDelivery.created_at)
            )
            return list(s.scalars(q))

    # --- expiry -----------------------------------------------------------------------------------

    def expired(self, now: float, *, limit: int = 500) -> tuple[list[TaskRecord], list[AudioRecord]]:
        """Tasks and audios past their expiry whose files have not been purged yet."""
        with self.session() as s:
            tasks = list(
                s.scalars(
                    select(TaskRecord)
                    .where(
                        TaskRecord.expires_at <= now,
                        TaskRecord.purged_at.is_(None),
                        TaskRecord.state.not_in([TaskState.QUEUED, TaskState.RUNNING]),
                    )
                    .limit(limit)
                )
            )
            audios = list(
                s.scalars(
                    select(AudioRecord)
                    .where(AudioRecord.expires_at <= now, AudioRecord.purged_at.is_(None))
                    .limit(limit)
                )
            )
        return tasks, audios

    def mark_purged(self, task_ids: Sequence[str], audio_ids: Sequence[str], now: float) -> None:
        with self.session() as s:
            if task_ids:
                s.execute(
                    update(TaskRecord)
                    .where(TaskRecord.id.in_(list(task_ids)))
                    .values(purged_at=now, state=TaskState.EXPIRED)
                    .execution_options(synchronize_session=False)
                )
            if audio_ids:
                s.execute(
                    update(AudioRecord)
                    .where(AudioRecord.id.in_(list(audio_ids)))
                    .values(purged_at=now)
                    .execution_options(synchronize_session=False)
                )


def open_store(
    url: str, *, migrate: bool = True, webhook_attempts: int = 5, busy_timeout_s: float = 5.0
) -> SqlJobStore:
    """A store on `url`, migrated to the newest schema first (unless `migrate=False`)."""
    if url.startswith("sqlite"):
        _private_file(make_url(url).database or "")
    if migrate:
        from stemscribe.jobs.migrations import upgrade_database

        upgrade_database(url)
    return SqlJobStore(url, webhook_attempts=webhook_attempts, busy_timeout_s=busy_timeout_s)
