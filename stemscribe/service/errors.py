"""Every error answer of the API, shaped per dialect, in one place.

Handlers raise `ApiError(status, code, message)` (or let a library error through: `library_error`
maps each `StemscribeError` to its status, and `failed_task_status` a failed task's error code); the
exception handlers here pick the dialect from the request path and write its error shape:

    AceData     {"success": false, "error": {"code", "message"}, "trace_id", "task_id"?}
    aimusicapi  {"code": <status>, "message"}
    kie.ai      {"code": <status>, "msg", "data": null}
    native      {"error": {"code", "message"}}
"""

from __future__ import annotations

import logging
import uuid
from enum import Enum
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from stemscribe.errors import (
    AudioError,
    AudioLimitError,
    AudioTooLargeError,
    AudioTooLongError,
    EngravingError,
    InvalidOptionError,
    ModelError,
    ScoreUnavailableError,
    SeparationUnavailableError,
    StemscribeError,
)
from stemscribe.jobs.models import TaskRecord
from stemscribe.jobs.netguard import BlockedAddressError

logger = logging.getLogger(__name__)


class Dialect(str, Enum):
    ACEDATA = "acedata"
    AIMUSICAPI = "aimusicapi"
    KIE = "kie"
    NATIVE = "native"


def dialect_of(path: str) -> Dialect:
    if path.startswith("/suno/"):
        return Dialect.ACEDATA
    if path.startswith("/api/v1/suno/"):
        return Dialect.AIMUSICAPI
    if path.startswith("/api/"):
        return Dialect.KIE
    return Dialect.NATIVE


class ApiError(HTTPException):
    """An error answer: HTTP status, a short machine code and a message for people."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        task_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.code = code
        self.message = message
        self.task_id = task_id


def show_id(ident: object, limit: int = 48) -> str:
    """An id as error messages quote it: repr'd, and cut to `limit` characters (ids come from callers)."""
    text = repr(ident)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} {show_id(ident)} not found")


RETRY_AFTER_S = 2
LIMIT_SETTINGS = {
    "max_duration": "STEMSCRIBE_MAX_DURATION_S",
    "max_sample_rate": "STEMSCRIBE_MAX_SAMPLE_RATE",
    "max_channels": "STEMSCRIBE_MAX_CHANNELS",
    "max_samples": "STEMSCRIBE_MAX_DECODE_SAMPLES",
}
"""The setting behind each decoding limit (`audio.DecodeLimits`), named in the refusal."""


def store_busy(exc: OperationalError) -> ApiError | None:
    """503 with Retry-After when a database write timed out waiting for a lock (else None)."""
    text = str(exc.orig or exc).lower()
    if "locked" in text or "lock timeout" in text or "busy" in text or "lock_timeout" in text:
        return ApiError(
            503,
            "busy",
            "the database is busy (a write waited for its lock too long); retry shortly",
            headers={"retry-after": str(RETRY_AFTER_S)},
        )
    return None


_DEFAULT_CODES = {
    400: "bad_request",
    401: "invalid_token",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "expired",
    413: "too_large",
    415: "unsupported_media_type",
    422: "bad_request",
    429: "too_many_requests",
    500: "api_error",
    503: "unavailable",
    504: "timeout",
}


CLIENT_ERROR_CODES = frozenset({"bad_audio", "invalid_option"})
"""Task error codes (see `jobs.worker.error_code`) that are the caller's fault: answered as 400."""


def failed_task_status(task: TaskRecord) -> int:
    """The HTTP status a failed task is answered with: 400 for the caller's input, else 500."""
    return 400 if task.error_code in CLIENT_ERROR_CODES else 500


def library_error(exc: StemscribeError) -> ApiError:
    """The answer for an error the core library raised on the caller's input."""
    if isinstance(exc, AudioTooLongError):
        return ApiError(413, "too_long", str(exc))
    if isinstance(exc, AudioLimitError):
        setting = LIMIT_SETTINGS.get(exc.limit)
        message = f"{exc} ({setting})" if setting else str(exc)
        if isinstance(exc, AudioTooLargeError):
            return ApiError(413, "too_large", message)
        return ApiError(400, "bad_request", f"not usable as audio: {message}")
    if isinstance(exc, AudioError):
        return ApiError(400, "bad_request", f"not usable as audio: {exc}")
    if isinstance(exc, (InvalidOptionError, BlockedAddressError)):
        return ApiError(400, "bad_request", str(exc))
    if isinstance(exc, SeparationUnavailableError):
        return ApiError(503, "separation_unavailable", str(exc))
    if isinstance(exc, EngravingError):
        return ApiError(422, "score_failed", str(exc))
    if isinstance(exc, ScoreUnavailableError):
        return ApiError(503, "score_unavailable", str(exc))
    if isinstance(exc, ModelError):
        return ApiError(500, "api_error", str(exc))
    return ApiError(500, "api_error", str(exc))


def render_error(
    request: Request, status: int, code: str, message: str, task_id: str | None = None
) -> JSONResponse:
    dialect = dialect_of(request.url.path)
    body: dict[str, Any]
    if dialect is Dialect.ACEDATA:
        if code == "no_token":
            status = 400  # AceData lists a missing token under 400
        body = {"success": False, "error": {"code": code, "message": message}, "trace_id": str(uuid.uuid4())}
        if task_id:
            body["task_id"] = task_id
    elif dialect is Dialect.AIMUSICAPI:
        body = {"code": status, "message": message}
    elif dialect is Dialect.KIE:
        body = {"code": status, "msg": message, "data": None}
    else:
        body = {"error": {"code": code, "message": message}}
        if task_id:
            body["error"]["task_id"] = task_id
    return JSONResponse(body, status_code=status)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body", "query", "path"))
        parts.append(f"{loc or 'request'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        response = render_error(request, exc.status_code, exc.code, exc.message, exc.task_id)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _DEFAULT_CODES.get(exc.status_code, "error")
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            code, message = "no_api", f"no endpoint {request.method} {request.url.path}"
        response = render_error(request, exc.status_code, code, message)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        status = 422 if dialect_of(request.url.path) is Dialect.KIE else 400
        return render_error(request, status, "bad_request", _validation_message(exc))

    @app.exception_handler(StemscribeError)
    async def _library(request: Request, exc: StemscribeError) -> JSONResponse:
        err = library_error(exc)
        return render_error(request, err.status_code, err.code, err.message)

    @app.exception_handler(OperationalError)
    async def _store(request: Request, exc: OperationalError) -> JSONResponse:
        err = store_busy(exc)
        if err is None:
            logger.exception("database error on %s %s", request.method, request.url.path)
            err = ApiError(500, "api_error", "internal error: the database failed")
        response = render_error(request, err.status_code, err.code, err.message)
        response.headers.update(err.headers or {})
        return response

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> JSONResponse:
        # Edge validation should have caught it; a value the database refuses is still the caller's.
        logger.warning("database refused a value on %s %s: %s", request.method, request.url.path, exc.orig)
        return render_error(request, 400, "bad_request", "a value in the request is too long or invalid")

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
        return JSONResponse(
            {"error": {"code": "client_disconnected", "message": "client went away"}}, status_code=499
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return render_error(request, 500, "api_error", f"internal error: {type(exc).__name__}")
