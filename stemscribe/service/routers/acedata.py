"""AceData's Suno API (`/suno/...`): midi, tasks, upload and the stems actions of audios."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from stemscribe.jobs.models import TaskKind, TaskRecord, TaskState
from stemscribe.service.context import ServiceContext
from stemscribe.service.deps import Caller, Ctx, base_url
from stemscribe.service.errors import ApiError, failed_task_status
from stemscribe.service.shapes import (
    acedata_audios_answer,
    acedata_failure,
    acedata_midi_answer,
    acedata_task,
    iso,
)

router = APIRouter(prefix="/suno", tags=["acedata"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "`{success: false, error: {code, message}, trace_id}`: bad_request, no_token, "
        "api_not_implemented"
    },
    401: {"description": "invalid_token"},
    403: {"description": "forbidden (revoked key)"},
    404: {"description": "not_found"},
    429: {"description": "too_many_requests"},
    500: {"description": "api_error"},
    504: {"description": "timeout"},
}

SUPPORTED_ACTIONS = ("stems", "all_stems")
DOCUMENTED_ACTIONS = (
    "generate extend upload_extend upload_cover concat cover artist_consistency artist_consistency_vox "
    "stems all_stems replace_section underpainting overpainting remaster mashup samples"
).split()


class MidiRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # unknown fields are dropped, never stored
    audio_id: str = Field(min_length=1)
    callback_url: str | None = None


class TasksRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # unknown fields are dropped, never stored
    action: Literal["retrieve", "retrieve_batch"] = "retrieve"
    id: str | None = None
    ids: list[str] | None = Field(default=None, max_length=100)


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # unknown fields are dropped, never stored
    audio_url: str = Field(min_length=1)


class AudiosRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # unknown fields are dropped, never stored
    action: str = "generate"
    audio_id: str | None = None
    callback_url: str | None = None


async def _answer(ctx: ServiceContext, task: TaskRecord, sync: bool, render: Any) -> Any:
    if not sync:
        return {"task_id": task.id}
    task = await ctx.wait(task, ctx.settings.sync_wait_s)
    if task.state is TaskState.SUCCEEDED:
        return await run_in_threadpool(render, task)
    if task.state is TaskState.FAILED:
        return JSONResponse(acedata_failure(task), status_code=failed_task_status(task))
    raise ApiError(
        504,
        "timeout",
        f"the task is still {task.state.value} after {ctx.settings.sync_wait_s:g} s; "
        "look it up with POST /suno/tasks",
        task_id=task.id,
    )


@router.post("/midi", responses=_ERRORS)
async def suno_midi(request: Request, ctx: Ctx, caller: Caller, body: MidiRequest) -> Any:
    """MIDI of an audio: waits and answers the result, or with `callback_url` answers `{task_id}` at once."""
    audio = await run_in_threadpool(ctx.get_audio, caller, body.audio_id)
    task = await run_in_threadpool(
        ctx.create_task,
        caller,
        kind=TaskKind.TRANSCRIBE,
        dialect="acedata",
        audio=audio,
        request=body.model_dump(exclude_none=True),
        base_url=base_url(request),
        callback_url=body.callback_url,
    )

    def render(t: TaskRecord) -> Any:
        return acedata_midi_answer(t, ctx.require_result(t))

    return await _answer(ctx, task, body.callback_url is None, render)


@router.post("/tasks", responses=_ERRORS)
def suno_tasks(ctx: Ctx, caller: Caller, body: TasksRequest) -> Any:
    """Look up tasks: `{id, action: "retrieve"}` or `{ids: [...], action: "retrieve_batch"}`."""
    if body.action == "retrieve":
        if not body.id:
            raise ApiError(400, "bad_request", "id is required when action is retrieve")
        return acedata_task(ctx, ctx.get_task(caller, body.id))
    if not body.ids:
        raise ApiError(400, "bad_request", "ids is required when action is retrieve_batch")
    items = [acedata_task(ctx, t) for t in ctx.get_tasks(caller, body.ids)]
    return {"items": items, "count": len(items)}


@router.post("/upload", responses=_ERRORS)
async def suno_upload(request: Request, ctx: Ctx, caller: Caller, body: UploadRequest) -> Any:
    """Fetch an audio URL and keep it; the answer's `audio_id` feeds every other endpoint."""
    audio = await run_in_threadpool(ctx.accept_url, caller, body.audio_url)
    return {
        "success": True,
        "task_id": str(uuid.uuid4()),
        "trace_id": str(uuid.uuid4()),
        "data": {
            "audio_id": audio.id,
            "audio_url": ctx.link(base_url(request), "audio", audio.id, audio.expires_at),
            "title": audio.title,
            "duration": audio.duration,
            "image_url": "",
            "created_at": iso(audio.created_at),
        },
    }


@router.post("/audios", responses={**_ERRORS, 503: {"description": "separation_unavailable"}})
async def suno_audios(request: Request, ctx: Ctx, caller: Caller, body: AudiosRequest) -> Any:
    """`action: "stems"` (vocals + instrumental) or `"all_stems"`; other actions are not implemented."""
    if body.action not in SUPPORTED_ACTIONS:
        known = "known" if body.action in DOCUMENTED_ACTIONS else "unknown"
        raise ApiError(
            400,
            "api_not_implemented",
            f"action {body.action!r} ({known}) is not implemented by stemscribe, "
            "which separates and transcribes "
            f"existing audio but does not generate music; supported actions: {', '.join(SUPPORTED_ACTIONS)}",
        )
    if not body.audio_id:
        raise ApiError(400, "bad_request", f"audio_id is required when action is {body.action}")
    audio = await run_in_threadpool(ctx.get_audio, caller, body.audio_id)
    task = await run_in_threadpool(
        ctx.create_separation,
        caller,
        dialect="acedata",
        audio=audio,
        request=body.model_dump(exclude_none=True),
        base_url=base_url(request),
        mode=body.action,
        callback_url=body.callback_url,
    )
    return await _answer(ctx, task, body.callback_url is None, lambda t: acedata_audios_answer(ctx, t))
