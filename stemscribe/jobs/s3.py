"""Artifact storage in an S3-compatible bucket (AWS S3, MinIO, Ceph, moto's server), through boto3.

The endpoint and credentials come from the standard AWS variables (`AWS_ENDPOINT_URL`,
`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`, ...). Uploads are spooled to a
local temporary file (the server decodes them before keeping them), then sent by boto3's transfer
manager, in parts above 8 MiB. Downloads stream from the bucket through the API node. botocore
retries throttling and connection errors (standard mode, 10 attempts), so a restarting S3 server is
waited for rather than failing a job.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

from stemscribe.jobs.storage import StorageError, check_key

MULTIPART_THRESHOLD = 8 * 1024 * 1024
_CHUNK = 1 << 20


class S3Reader:
    """A streaming S3 object body as a binary file: `read(n)`, iteration in 1 MiB chunks, `close()`."""

    def __init__(self, body: Any, size: int | None = None) -> None:
        self._body = body
        self.size = size
        """The object's length in bytes, as the bucket reported it."""

    def read(self, n: int = -1) -> bytes:
        return cast(bytes, self._body.read(None if n is None or n < 0 else n))

    def __iter__(self) -> Iterator[bytes]:
        yield from self._body.iter_chunks(_CHUNK)

    def close(self) -> None:
        self._body.close()

    def __enter__(self) -> S3Reader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _missing(exc: Exception) -> bool:
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


class S3Storage:
    """Objects under `s3://<bucket>/<prefix>/<key>`; a put replaces the object whole, so keys that a
    re-run writes again (a task's results) are simply overwritten."""

    def __init__(
        self, bucket: str, prefix: str = "", *, temp_dir: Path | None = None, client: Any = None
    ) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        if not bucket:
            raise StorageError("an S3 storage URL needs a bucket: s3://<bucket>/<prefix>")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client or boto3.client(
            "s3", config=Config(retries={"max_attempts": 10, "mode": "standard"})
        )
        self._transfer = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_THRESHOLD
        )
        self.temp_dir = temp_dir
        if temp_dir is not None:
            temp_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    @classmethod
    def from_url(cls, url: str, *, temp_dir: Path | None = None) -> S3Storage:
        """`s3://bucket/prefix` (the prefix may be empty)."""
        if not url.startswith("s3://"):
            raise StorageError(f"not an S3 URL: {url!r}")
        bucket, _, prefix = url[len("s3://") :].partition("/")
        return cls(bucket, prefix, temp_dir=temp_dir)

    def _key(self, key: str) -> str:
        name = check_key(key).as_posix()
        return f"{self.prefix}/{name}" if self.prefix else name

    def put_bytes(self, key: str, data: bytes) -> int:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        return len(data)

    def put_file(self, key: str, path: Path) -> int:
        size = path.stat().st_size
        self.client.upload_file(str(path), self.bucket, self._key(key), Config=self._transfer)
        path.unlink(missing_ok=True)
        return size

    def get_bytes(self, key: str) -> bytes:
        with self.open(key) as body:
            return body.read()

    def open(self, key: str) -> BinaryIO:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.ClientError as exc:
            if _missing(exc):
                raise StorageError(f"no object {key!r}") from None
            raise
        size = answer.get("ContentLength")
        return cast(BinaryIO, S3Reader(answer["Body"], int(size) if size is not None else None))

    def local_path(self, key: str) -> Path | None:
        check_key(key)
        return None

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return cast(dict[str, Any], self.client.head_object(Bucket=self.bucket, Key=self._key(key)))
        except self.client.exceptions.ClientError as exc:
            if _missing(exc):
                return None
            raise

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def size(self, key: str) -> int:
        head = self._head(key)
        if head is None:
            raise StorageError(f"no object {key!r}")
        return int(head["ContentLength"])

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every key under `prefix` (relative to this storage's own prefix), in order."""
        full = self._key(prefix) if prefix else self.prefix
        start = len(self.prefix) + 1 if self.prefix else 0
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full)
        for page in pages:
            for item in page.get("Contents", []):
                name = str(item["Key"])
                if not prefix or name == full or name.startswith(full + "/"):
                    yield name[start:]

    def delete_prefix(self, prefix: str) -> int:
        names = [self._key(k) for k in self.keys(prefix)]
        for i in range(0, len(names), 1000):
            self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in names[i : i + 1000]], "Quiet": True},
            )
        return len(names)

    def temp_file(self) -> Path:
        fd, name = tempfile.mkstemp(dir=self.temp_dir, prefix="upload-")
        os.close(fd)
        return Path(name)
