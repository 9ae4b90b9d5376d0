"""Artifact storage: where uploads, stems, MIDI and JSON results live, behind a small interface.

Keys are relative POSIX paths such as `audio/<id>/original`. `LocalStorage` keeps them under a
directory; `stemscribe.jobs.s3.S3Storage` in an S3-compatible bucket (`open_storage("s3://...")`).
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO, Protocol, runtime_checkable

if TYPE_CHECKING:
    from stemscribe.settings import Settings


def audio_prefix(audio_id: str) -> str:
    """Where everything of one audio lives."""
    return f"audio/{audio_id}"


def audio_key(audio_id: str) -> str:
    """The stored bytes of an audio (an upload as received, or a separated stem)."""
    return f"{audio_prefix(audio_id)}/original"


def task_prefix(task_id: str) -> str:
    """Where everything a task wrote lives."""
    return f"tasks/{task_id}"


def result_key(task_id: str, name: str) -> str:
    """One artifact of a task: result.json, result.mid, result.quantized.mid."""
    return f"{task_prefix(task_id)}/{name}"


class StorageError(Exception):
    """A key is invalid or an object is missing."""


@runtime_checkable
class ArtifactStorage(Protocol):
    """Stores immutable blobs by key."""

    def put_bytes(self, key: str, data: bytes) -> int:
        """Store `data` under `key` atomically; return its size."""
        ...

    def put_file(self, key: str, path: Path) -> int:
        """Move the local file at `path` under `key` atomically; return its size."""
        ...

    def get_bytes(self, key: str) -> bytes: ...

    def open(self, key: str) -> BinaryIO: ...

    def local_path(self, key: str) -> Path | None:
        """A filesystem path to the object when the backend has one (lets the server use sendfile)."""
        ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix`; return how many were deleted."""
        ...

    def temp_file(self) -> Path:
        """A fresh local temporary file on the same volume, for streaming uploads before `put_file`."""
        ...


def check_key(key: str) -> PurePosixPath:
    p = PurePosixPath(key)
    if not key or p.is_absolute() or any(part in ("", ".", "..") for part in p.parts):
        raise StorageError(f"invalid storage key {key!r}")
    return p


class LocalStorage:
    """Objects as files under `root`; writes go through a temporary file and `os.replace`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.root / ".tmp").mkdir(exist_ok=True, mode=0o700)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).parts)

    def put_bytes(self, key: str, data: bytes) -> int:
        tmp = self.temp_file()
        tmp.write_bytes(data)
        return self.put_file(key, tmp)

    def put_file(self, key: str, path: Path) -> int:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path, 0o600)  # objects are readable by the server's user only
        size = path.stat().st_size
        try:
            os.replace(path, target)
        except OSError:
            shutil.move(str(path), target)
        return size

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise StorageError(f"no object {key!r}") from None

    def open(self, key: str) -> BinaryIO:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError:
            raise StorageError(f"no object {key!r}") from None

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise StorageError(f"no object {key!r}") from None

    def delete_prefix(self, prefix: str) -> int:
        base = self._path(prefix)
        if base.is_file():
            base.unlink()
            return 1
        if not base.is_dir():
            return 0
        count = sum(1 for p in base.rglob("*") if p.is_file())
        shutil.rmtree(base, ignore_errors=True)
        return count

    def temp_file(self) -> Path:
        fd, name = tempfile.mkstemp(dir=self.root / ".tmp")
        os.close(fd)
        return Path(name)

    def keys(self, prefix: str = "") -> Iterator[str]:
        base = self._path(prefix) if prefix else self.root
        for p in sorted(base.rglob("*")):
            if p.is_file() and ".tmp" not in p.relative_to(self.root).parts[:1]:
                yield p.relative_to(self.root).as_posix()


STORAGE_BACKENDS = {"s3": "stemscribe.jobs.s3:S3Storage"}
"""URL scheme -> backend class (imported only when chosen); anything else is a local directory."""


def open_storage(location: str | Path, *, temp_dir: Path | None = None) -> ArtifactStorage:
    """The storage backend for a location: `s3://bucket/prefix`, else a local directory.

    `temp_dir` is where a remote backend spools uploads before sending them (default: the system's).
    """
    scheme = str(location).split("://", 1)[0] if "://" in str(location) else ""
    if scheme in STORAGE_BACKENDS:
        module, _, name = STORAGE_BACKENDS[scheme].partition(":")
        backend = getattr(importlib.import_module(module), name)
        return backend.from_url(str(location), temp_dir=temp_dir)  # type: ignore[no-any-return]
    if scheme:
        raise StorageError(f"unknown storage URL scheme {scheme!r} (known: {', '.join(STORAGE_BACKENDS)})")
    return LocalStorage(location)


def storage_for(settings: Settings) -> ArtifactStorage:
    """The settings' storage: `STEMSCRIBE_STORAGE_URL` when set, else `<data_dir>/files`."""
    if settings.storage_url:
        return open_storage(settings.storage_url, temp_dir=settings.data_dir / "tmp")
    return LocalStorage(settings.resolved_storage_dir)
