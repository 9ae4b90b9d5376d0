"""stemscribe's own API: uploads and transcriptions under `/v1` (the web page uses it)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stemscribe.errors import InvalidOptionError
from stemscribe.jobs.models import TaskKind
from stemscribe.service.context import clean_filename
from stemscribe.service.deps import Caller, Ctx, base_url
from stemscribe.service.downloads import send_file
from stemscribe.service.errors import ApiError
from stemscribe.service.shapes import native_task, native_upload, with_deliveries
from stemscribe.stems import StemType

router = APIRouter(prefix="/v1", tags=["native"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Bad request: `{error: {code, message}}`"},
    401: {"description": "Missing or unknown API key"},
    404: {"description": "No such id (or not yours)"},
}


class Upload(BaseModel):
    id: str
    filename: str
    title: str
    duration: float
    size: int
    content_type: str
    sample_rate: int
    source: str
    stem: str | None
    parent_id: str | None
    created_at: str
    expires_at: str
    audio_url: str


class TaskError(BaseModel):
    code: str | None
    message: str | None


class Task(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    kind: str
    state: Literal["queued", "running", "succeeded", "failed", "expired"]
    stage: str
    progress: float
    error: TaskError | None
    audio_id: str
    filename: str
    stem: str
    quantize: bool
    created_at: str
    started_at: str | None
    finished_at: str | None
    expires_at: str
    result: dict[str, Any] | None
    midi_url: str | None
    midi_quantized_url: str | None
    json_url: str | None
    musicxml_url: str | None = None
    pdf_url: str | None = None
    score_url: str | None = None
    audio_url: str
    callback_url: str | None
    callback: dict[str, Any] | None = None


class TaskList(BaseModel):
    items: list[Task]
    count: int


class TranscriptionRequest(BaseModel):
    """JSON body of `POST /v1/transcriptions`: one of `audio_id` or `audio_url`."""

    model_config = ConfigDict(extra="forbid")

    audio_id: str | None = None
    audio_url: str | None = None
    stem: str = "auto"
    quantize: bool = False
    callback_url: str | None = Field(default=None, max_length=2000)


def _stem(value: str) -> str:
    try:
        return StemType.parse(value).value
    except InvalidOptionError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@router.post(
    "/uploads",
    status_code=201,
    response_model=Upload,
    responses={**_ERRORS, 413: {"description": "Too large"}},
)
def create_upload(
    ctx: Ctx, caller: Caller, file: Annotated[UploadFile, File(description="An audio file")]
) -> Any:
    """Upload an audio file; its id works as `audio_id` / `clip_id` / `audioId` in every dialect."""
    audio = ctx.accept_stream(
        caller, file.file, filename=file.filename or "audio", content_type=file.content_type
    )
    return native_upload(audio)


@router.get("/uploads/{audio_id}", response_model=Upload, responses=_ERRORS)
def get_upload(ctx: Ctx, caller: Caller, audio_id: str) -> Any:
    return native_upload(ctx.get_audio(caller, audio_id))


@router.delete("/uploads/{audio_id}", status_code=204, response_class=Response, responses=_ERRORS)
def delete_upload(ctx: Ctx, caller: Caller, audio_id: str) -> Response:
    """Delete an upload (or a stem) and its files; its links stop working. Tasks keep their results."""
    ctx.delete_audio(caller, audio_id)
    return Response(status_code=204)


@router.get(
    "/uploads/{audio_id}/audio",
    response_class=Response,
    responses={
        **_ERRORS,
        200: {"content": {"application/octet-stream": {}}, "description": "The original bytes"},
    },
)
def get_upload_audio(ctx: Ctx, caller: Caller, audio_id: str) -> Response:
    """The uploaded file, byte for byte."""
    audio = ctx.get_audio(caller, audio_id)
    return send_file(ctx.audio_file(audio), audio.content_type, clean_filename(audio.filename))


_TRANSCRIBE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": TranscriptionRequest.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "stem": {"type": "string", "default": "auto"},
                        "quantize": {"type": "boolean", "default": False},
                        "callback_url": {"type": "string"},
                    },
                }
            },
        },
    }
}


@router.post(
    "/transcriptions",
    status_code=202,
    response_model=Task,
    openapi_extra=_TRANSCRIBE_BODY,
    responses={**_ERRORS, 413: {"description": "Too large"}},
)
async def create_transcription(request: Request, ctx: Ctx, caller: Caller) -> Any:
    """Queue a transcription of an uploaded file (multipart), an `audio_id` or an `audio_url` (JSON)."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        async with request.form() as form:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise ApiError(400, "bad_request", "multipart body needs a `file` part holding the audio")
            stem = _stem(str(form.get("stem") or "auto"))
            quantize = _truthy(str(form.get("quantize") or ""))
            callback = str(form.get("callback_url") or "") or None
            audio = await run_in_threadpool(
                ctx.accept_stream,
                caller,
                upload.file,
                filename=upload.filename or "audio",
                content_type=upload.content_type,
            )
        body: dict[str, Any] = {"audio_id": audio.id, "stem": stem, "quantize": quantize}
    elif content_type.startswith("application/json") or not content_type:
        try:
            req = TranscriptionRequest.model_validate_json(await request.body() or b"{}")
        except ValidationError as exc:
            msgs = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
            raise ApiError(400, "bad_request", msgs) from None
        if (req.audio_id is None) == (req.audio_url is None):
            raise ApiError(400, "bad_request", "give exactly one of `audio_id` or `audio_url`")
        stem, quantize, callback = _stem(req.stem), req.quantize, req.callback_url
        if req.audio_id is not None:
            audio = await run_in_threadpool(ctx.get_audio, caller, req.audio_id)
        else:
            audio = await run_in_threadpool(ctx.accept_url, caller, req.audio_url or "")
        body = req.model_dump(exclude_none=True)
    else:
        raise ApiError(415, "unsupported_media_type", "send application/json or multipart/form-data")
    task = await run_in_threadpool(
        ctx.create_task,
        caller,
        kind=TaskKind.TRANSCRIBE,
        dialect="native",
        audio=audio,
        request=body,
        base_url=base_url(request),
        stem=stem,
        quantize=quantize,
        callback_url=callback,
    )
    answer = await run_in_threadpool(lambda: with_deliveries(ctx, task, native_task(ctx, task)))
    return JSONResponse(answer, status_code=202)


@router.get("/transcriptions", response_model=TaskList, responses=_ERRORS)
def list_transcriptions(ctx: Ctx, caller: Caller, limit: Annotated[int, Query(ge=1, le=200)] = 20) -> Any:
    """The caller's transcriptions, newest first (results left out; fetch one task for its result)."""
    tasks = ctx.list_tasks(caller, limit=limit, kind=TaskKind.TRANSCRIBE)
    items = [native_task(ctx, t, with_result=False) for t in tasks]
    return {"items": items, "count": len(items)}


@router.get(
    "/transcriptions/{task_id}.mid",
    response_class=Response,
    responses={
        **_ERRORS,
        200: {"content": {"audio/midi": {}}},
        409: {"description": "Not finished"},
        410: {"description": "Expired"},
    },
)
def get_transcription_midi(
    ctx: Ctx, caller: Caller, task_id: str, quantize: Annotated[bool, Query()] = False
) -> Response:
    """The Standard MIDI File (`?quantize=1`: snapped to the beat grid)."""
    task = ctx.get_task(caller, task_id)
    name = "result.quantized.mid" if quantize else "result.mid"
    source = ctx.artifact(task, name)
    filename = f"{(task.filename.rsplit('.', 1)[0] or 'transcription')}{'.quantized' if quantize else ''}.mid"
    return send_file(source, "audio/midi", filename)


@router.get(
    "/transcriptions/{task_id}.json",
    responses={**_ERRORS, 409: {"description": "Not finished"}, 410: {"description": "Expired"}},
)
def get_transcription_json(ctx: Ctx, caller: Caller, task_id: str) -> dict[str, Any]:
    """The result: instruments with their notes, tempo, beats."""
    return ctx.require_result(ctx.get_task(caller, task_id))


@router.get("/transcriptions/{task_id}", response_model=Task, responses=_ERRORS)
def get_transcription(ctx: Ctx, caller: Caller, task_id: str) -> Any:
    """A task: state, stage, progress, and the result once it succeeded (the endpoint to poll)."""
    task = ctx.get_task(caller, task_id)
    return JSONResponse(with_deliveries(ctx, task, native_task(ctx, task)))


@router.delete("/transcriptions/{task_id}", status_code=204, response_class=Response, responses=_ERRORS)
def delete_transcription(ctx: Ctx, caller: Caller, task_id: str) -> Response:
    """Delete a task and its files (a running task finishes, but its result is discarded)."""
    ctx.delete_task(caller, task_id)
    return Response(status_code=204)
