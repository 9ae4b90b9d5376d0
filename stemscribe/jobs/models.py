"""The job store's tables (SQLAlchemy 2 declarative). Times are seconds since the epoch (UTC).

`state` and `kind` columns hold their enums (stored as the lowercase values in VARCHAR columns, as
before, so the schema and the rows are unchanged).
"""

from __future__ import annotations

from enum import Enum
from typing import Any, TypeVar

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy import Enum as SqlEnum
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class TaskState(str, Enum):
    """Where a task stands; `store.SqlJobStore` makes every change (claim, finish, requeue, purge)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"


class TaskKind(str, Enum):
    TRANSCRIBE = "transcribe"
    SEPARATE = "separate"


class DeliveryState(str, Enum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


E = TypeVar("E", bound=Enum)


def enum_column(enum: type[E]) -> SqlEnum:
    """A VARCHAR(20) column holding `enum` members by their values (no CHECK, no native type)."""
    return SqlEnum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=20,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Principal(Base):
    """An API key (only its sha256 is kept) or the built-in `local` principal."""

    __tablename__ = "principals"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    key_prefix: Mapped[str | None] = mapped_column(String(16), nullable=True)
    key_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    webhook_secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class AudioRecord(Base):
    """An audio the server holds: an upload, a fetched URL or a separated stem."""

    __tablename__ = "audios"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(40), ForeignKey("principals.id"), index=True)
    filename: Mapped[str] = mapped_column(String(400))
    title: Mapped[str] = mapped_column(String(400))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    duration: Mapped[float] = mapped_column(Float)
    sample_rate: Mapped[int] = mapped_column(Integer)
    channels: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(20))
    source_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    parent_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    stem_name: Mapped[str | None] = mapped_column(String(40), nullable=True)
    storage_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    purged_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class TaskRecord(Base):
    """A unit of work for the workers: transcribe one or more audios, or separate one into stems."""

    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(40), ForeignKey("principals.id"))
    kind: Mapped[TaskKind] = mapped_column(enum_column(TaskKind))
    dialect: Mapped[str] = mapped_column(String(20))
    state: Mapped[TaskState] = mapped_column(enum_column(TaskState), index=True)
    stage: Mapped[str] = mapped_column(String(40), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    error_code: Mapped[str | None] = mapped_column(String(60), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    audio_id: Mapped[str] = mapped_column(String(40))
    filename: Mapped[str] = mapped_column(String(400), default="")
    input_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    stem: Mapped[str] = mapped_column(String(20), default="auto")
    quantize: Mapped[bool] = mapped_column(Boolean, default=False)
    mode: Mapped[str | None] = mapped_column(String(40), nullable=True)
    parent_task_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    request: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    output: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    trace_id: Mapped[str] = mapped_column(String(40))
    callback_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    base_url: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    purged_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    lease_until: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (
        Index("ix_tasks_owner_created", "owner_id", "created_at"),
        Index("ix_tasks_owner_audio", "owner_id", "audio_id"),
    )


class WebhookDelivery(Base):
    """One callback to send; kept until delivered or out of attempts, so a restart loses none."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(40), index=True)
    owner_id: Mapped[str] = mapped_column(String(40))
    url: Mapped[str] = mapped_column(Text)
    payload: Mapped[str | None] = mapped_column(Text, nullable=True)
    state: Mapped[DeliveryState] = mapped_column(enum_column(DeliveryState), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    next_attempt_at: Mapped[float] = mapped_column(Float, index=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    delivered_at: Mapped[float | None] = mapped_column(Float, nullable=True)
