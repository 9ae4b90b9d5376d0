"""Stored files as HTTP answers: the same headers whether the storage hands back a local path
(sent by `FileResponse`, with sendfile) or a stream from an S3 bucket (scale-out)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from fastapi.responses import FileResponse, Response, StreamingResponse

_CHUNK = 1 << 20


def content_disposition(filename: str) -> str:
    """`attachment; filename="..."`, or RFC 5987's `filename*=utf-8''...` for names that need
    quoting (Starlette's `FileResponse` makes the same)."""
    quoted = quote(filename)
    if quoted != filename:
        return f"attachment; filename*=utf-8''{quoted}"
    return f'attachment; filename="{filename}"'


def _chunks(source: BinaryIO) -> Iterator[bytes]:
    try:
        while chunk := source.read(_CHUNK):
            yield chunk
    finally:
        source.close()  # also when the client goes away mid-download


def send_file(
    source: Path | BinaryIO, media_type: str, filename: str, headers: dict[str, str] | None = None
) -> Response:
    """`source` (a stored file's path, or an open stream) as a download named `filename`."""
    if isinstance(source, Path):
        return FileResponse(source, media_type=media_type, filename=filename, headers=headers)
    extra = {"content-disposition": content_disposition(filename), **(headers or {})}
    size = getattr(source, "size", None)
    if isinstance(size, int):
        extra["content-length"] = str(size)
    return StreamingResponse(_chunks(source), media_type=media_type, headers=extra)
