"""kie.ai's Suno API (`/api/v1/...`): vocal removal (separation) and MIDI generation, plus file upload."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from stemscribe.jobs.models import AudioRecord, Principal, TaskKind, TaskRecord
from stemscribe.service.context import ServiceContext
from stemscribe.service.deps import Caller, Ctx, base_url
from stemscribe.service.errors import ApiError
from stemscribe.service.shapes import iso, kie_midi_record, kie_ok, kie_separation_record

router = APIRouter(prefix="/api", tags=["kie"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "`{code: 400, msg, data: null}` format error"},
    401: {"description": "`{code: 401, msg, data: null}`"},
    404: {"description": "`{code: 404, msg, data: null}`"},
    409: {"description": "`{code: 409, msg, data: null}` separation not finished"},
    422: {"description": "`{code: 422, msg, data: null}` validation"},
    429: {"description": "`{code: 429, msg, data: null}` rate limited"},
}


class SeparationRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # unknown fields are dropped, never stored
    taskId: str | None = None
    audioId: str | None = None
    type: Literal["separate_vocal", "split_stem"] = "separate_vocal"
    callBackUrl: str = Field(min_length=1)


class MidiRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # unknown fields are dropped, never stored
    taskId: str = Field(min_length=1)
    callBackUrl: str = Field(min_length=1)
    audioId: str | None = None


class FileUrlRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # unknown fields are dropped, never stored
    fileUrl: str = Field(min_length=1)
    uploadPath: str = ""
    fileName: str | None = None


@router.post(
    "/v1/vocal-removal/generate", responses={**_ERRORS, 503: {"description": "separation unavailable"}}
)
async def vocal_removal(request: Request, ctx: Ctx, caller: Caller, body: SeparationRequest) -> Any:
    """Separate an uploaded audio (`audioId`, or its id as `taskId`) into stems."""
    audio = await run_in_threadpool(ctx.find_audio, caller, body.audioId, body.taskId)
    task = await run_in_threadpool(
        ctx.create_separation,
        caller,
        dialect="kie",
        audio=audio,
        request=body.model_dump(exclude_none=True),
        base_url=base_url(request),
        mode=body.type,
        callback_url=body.callBackUrl,
    )
    return kie_ok({"taskId": task.id})


def _kie_task(ctx: ServiceContext, caller: Principal, task_id: str, kind: TaskKind) -> TaskRecord:
    task = ctx.get_task(caller, task_id)
    if task.kind is not kind:
        raise ApiError(
            404,
            "not_found",
            f"{task_id!r} is not a {'separation' if kind is TaskKind.SEPARATE else 'MIDI'} task",
        )
    return task


@router.get("/v1/vocal-removal/record-info", responses=_ERRORS)
def vocal_removal_record(ctx: Ctx, caller: Caller, taskId: Annotated[str, Query(min_length=1)]) -> Any:
    return kie_ok(kie_separation_record(ctx, _kie_task(ctx, caller, taskId, TaskKind.SEPARATE)))


@router.post("/v1/midi/generate", responses=_ERRORS)
def midi_generate(request: Request, ctx: Ctx, caller: Caller, body: MidiRequest) -> Any:
    """MIDI of a finished separation (all its stems, or the one `audioId`), or of an uploaded audio."""
    task = ctx.create_stems_transcription(
        caller,
        dialect="kie",
        task_id=body.taskId,
        audio_id=body.audioId,
        request=body.model_dump(exclude_none=True),
        base_url=base_url(request),
        callback_url=body.callBackUrl,
    )
    return kie_ok({"taskId": task.id})


@router.get("/v1/midi/record-info", responses=_ERRORS)
def midi_record(ctx: Ctx, caller: Caller, taskId: Annotated[str, Query(min_length=1)]) -> Any:
    return kie_ok(kie_midi_record(ctx, _kie_task(ctx, caller, taskId, TaskKind.TRANSCRIBE)))


def _file_answer(
    ctx: ServiceContext, request: Request, audio: AudioRecord, upload_path: str
) -> dict[str, Any]:
    return {
        "success": True,
        "code": 200,
        "msg": "File uploaded successfully",
        "data": {
            "fileId": audio.id,
            "audioId": audio.id,
            "fileName": audio.filename,
            "filePath": f"{upload_path.strip('/')}/{audio.filename}".lstrip("/"),
            "downloadUrl": ctx.link(base_url(request), "audio", audio.id, audio.expires_at),
            "fileSize": audio.size,
            "mimeType": audio.content_type,
            "uploadedAt": iso(audio.created_at),
            "duration": audio.duration,
        },
    }


@router.post("/file-stream-upload", responses={**_ERRORS, 413: {"description": "Too large"}})
def file_stream_upload(
    request: Request,
    ctx: Ctx,
    caller: Caller,
    file: Annotated[UploadFile, File()],
    uploadPath: Annotated[str, Form()] = "",
    fileName: Annotated[str | None, Form()] = None,
) -> Any:
    """Upload an audio file (multipart); `data.audioId` works as `audioId`/`taskId`."""
    audio = ctx.accept_stream(
        caller, file.file, filename=fileName or file.filename or "audio", content_type=file.content_type
    )
    return _file_answer(ctx, request, audio, uploadPath)


@router.post("/file-url-upload", responses=_ERRORS)
def file_url_upload(request: Request, ctx: Ctx, caller: Caller, body: FileUrlRequest) -> Any:
    """Fetch an audio URL and keep it; `data.audioId` works as `audioId`/`taskId`."""
    audio = ctx.accept_url(caller, body.fileUrl)
    return _file_answer(ctx, request, audio, body.uploadPath)
