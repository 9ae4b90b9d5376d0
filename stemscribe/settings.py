"""Service settings, read from `STEMSCRIBE_*` environment variables (pydantic-settings).

Every setting has an embedded default, so `stemscribe serve` runs with none set: SQLite and files
under the data directory (`$STEMSCRIBE_DATA_DIR`, else `~/.local/share/stemscribe`).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from stemscribe.audio import DEFAULT_MAX_CHANNELS, DEFAULT_MAX_SAMPLE_RATE, DEFAULT_MAX_SAMPLES, DecodeLimits


def default_data_dir() -> Path:
    """`$XDG_DATA_HOME/stemscribe`, else `~/.local/share/stemscribe`."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "stemscribe"


class Settings(BaseSettings):
    """Configuration of the server, its workers and the CLI commands that touch its data."""

    model_config = SettingsConfigDict(env_prefix="STEMSCRIBE_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None
    """SQLAlchemy URL; default `sqlite:///<data_dir>/stemscribe.db` (scale-out: `postgresql+psycopg://...`)."""
    storage_dir: Path | None = None
    """Artifact directory; default `<data_dir>/files`."""
    storage_url: str | None = None
    """`s3://bucket/prefix`: artifacts in S3-compatible storage instead of `storage_dir` (endpoint and
    credentials from the standard AWS variables, `AWS_ENDPOINT_URL` included)."""
    broker_url: str | None = None
    """Celery broker (`amqp://...` RabbitMQ, or `redis://...`): jobs and callbacks run in
    `stemscribe worker` processes instead of the server's own workers."""
    queue_prefix: str = "stemscribe"
    """Celery queues are `<prefix>.transcribe`, `<prefix>.separate` and `<prefix>.callbacks`; Redis
    rate-limit keys start with `<prefix>:rate:` (several deployments may share one broker)."""
    redis_url: str | None = None
    """Redis holding the rate limits every API node shares; default the broker's when it is Redis."""
    secret_key: str | None = None
    """Signs download links; default a random key kept in `<data_dir>/secret.key`."""

    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None
    """Base URL put in links handed to clients (midi_url, audio_url); default: the request's own."""

    workers: int = 1
    """Worker processes that run transcriptions (0: queue only, no local worker)."""
    worker_threads: bool = False
    """Run workers as threads of the server process instead of processes (tests, tiny setups)."""
    worker_lease_s: float = 60.0
    """A running job whose worker has not reported for this long is queued again."""
    job_attempts: int = 3
    """How many times a job is started before it is failed for good (a worker dying counts)."""

    max_upload_bytes: int = 200 * 1024 * 1024
    max_json_bytes: int = 64 * 1024
    """Cap on any request body that is not a multipart upload (JSON and the like): 413 above it."""
    max_duration_s: float = 1200.0
    max_sample_rate: int = DEFAULT_MAX_SAMPLE_RATE
    """Audio whose header declares a higher sample rate is refused before decoding (400)."""
    max_channels: int = DEFAULT_MAX_CHANNELS
    max_decode_samples: int = DEFAULT_MAX_SAMPLES
    """Channels x rate x duration one decode may produce (413 above it), checked on the header first."""
    db_busy_timeout_s: float = 5.0
    """How long a database write waits for a lock (SQLite busy timeout, PostgreSQL lock_timeout)
    before the request answers 503 with Retry-After."""
    result_ttl_days: float = 14.0
    sync_wait_s: float = 600.0
    """How long AceData's synchronous `/suno/midi` and `/suno/audios` wait before answering 504."""
    aimusic_wait_s: float = 30.0
    """How long aimusicapi's `/api/v1/suno/midi` waits before answering "in progress"."""

    require_auth: bool = False
    rate_limit_per_s: float = 50.0
    """Sustained requests per second per key (0 disables the limit)."""
    rate_limit_burst: int = 200
    auth_fail_rate_per_s: float = 1.0
    """Requests with a missing or unknown key allowed per second per client address (0: no limit)."""
    auth_fail_burst: int = 20
    key_cache_s: float = 2.0
    """How long an API node answers from a key lookup it made. With Redis (scale-out), a key created
    or revoked anywhere ends every node's lookups of it at once; without, within this time."""
    metrics_require_key: bool = False
    """`GET /metrics` needs a valid API key (loopback token-less use still passes before any key)."""
    allow_private_urls: bool = False
    """Lift the refusal of loopback/private/link-local URLs (local testing only)."""

    fetch_timeout_s: float = 60.0
    webhook_timeout_s: float = 15.0
    webhook_attempts: int = 5
    webhook_backoff_s: float = 10.0
    """Delay before the second attempt; doubled for each further one."""
    webhook_poll_s: float = 0.5
    """How often the sender looks for due deliveries."""
    purge_interval_s: float = 3600.0

    @property
    def scale_out(self) -> bool:
        """Jobs go through a Celery broker to `stemscribe worker` processes."""
        return bool(self.broker_url)

    @property
    def resolved_redis_url(self) -> str | None:
        if self.redis_url:
            return self.redis_url
        if self.broker_url and self.broker_url.startswith(("redis://", "rediss://")):
            return self.broker_url
        return None

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'stemscribe.db'}"

    @property
    def resolved_storage_dir(self) -> Path:
        return self.storage_dir or self.data_dir / "files"

    @property
    def binds_loopback(self) -> bool:
        return is_loopback_host(self.host)

    def decode_limits(self) -> DecodeLimits:
        """The limits every decode of the service's audio runs under (uploads, fetches, workers)."""
        return DecodeLimits(
            max_duration=self.max_duration_s,
            max_sample_rate=self.max_sample_rate,
            max_channels=self.max_channels,
            max_samples=self.max_decode_samples,
        )

    def ensure_dirs(self) -> None:
        """Create the data and storage dirs, readable by this user only (0700)."""
        for path in (self.data_dir, self.resolved_storage_dir):
            created = not path.exists()
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            if created:
                path.chmod(0o700)

    def resolved_secret_key(self) -> bytes:
        """The link-signing key: the setting, else a random one created once under the data dir."""
        if self.secret_key:
            return self.secret_key.encode()
        path = self.data_dir / "secret.key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
        return path.read_text().strip().encode()


def is_loopback_host(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
