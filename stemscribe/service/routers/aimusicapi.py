"""aimusicapi's Suno API (`/api/v1/suno/...`): midi, upload, task lookup."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from stemscribe.jobs.models import TaskState
from stemscribe.service.deps import Caller, Ctx, base_url
from stemscribe.service.errors import failed_task_status
from stemscribe.service.shapes import aimusic_clip, aimusic_midi_answer, aimusic_pending, aimusic_task_item

router = APIRouter(prefix="/api/v1/suno", tags=["aimusicapi"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "`{code: 400, message}` validation"},
    401: {"description": "`{code: 401, message}` auth"},
    403: {"description": "`{code: 403, message}` revoked key"},
    404: {"description": "`{code: 404, message}` no such clip"},
    500: {"description": "`{code: 500, message}` the transcription failed"},
}


class MidiRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # unknown fields are dropped, never stored
    clip_id: str = Field(min_length=1)


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # unknown fields are dropped, never stored
    url: str = Field(min_length=1)


@router.post("/midi", responses=_ERRORS)
async def suno_midi(request: Request, ctx: Ctx, caller: Caller, body: MidiRequest) -> Any:
    """The MIDI of a clip. Waits up to `aimusic_wait_s`; before the result is ready it answers
    `{"code": 202, ...}` and the same request (same clip_id) can be repeated until `code` is 200."""
    audio = await run_in_threadpool(ctx.get_audio, caller, body.clip_id)
    task = await run_in_threadpool(
        ctx.find_or_create_transcription,
        caller,
        dialect="aimusicapi",
        audio=audio,
        request=body.model_dump(exclude_none=True),
        base_url=base_url(request),
    )
    task = await ctx.wait(task, ctx.settings.aimusic_wait_s)
    if task.state is TaskState.SUCCEEDED:
        return await run_in_threadpool(aimusic_midi_answer, ctx, task)
    if task.state is TaskState.FAILED:
        status = failed_task_status(task)
        return JSONResponse(
            {"code": status, "message": task.error_message or "transcription failed"}, status_code=status
        )
    return aimusic_pending(task)


@router.post("/upload", responses=_ERRORS)
async def suno_upload(ctx: Ctx, caller: Caller, body: UploadRequest) -> Any:
    """Fetch an audio URL and keep it; the answer's `clip_id` works with `/api/v1/suno/midi`."""
    audio = await run_in_threadpool(ctx.accept_url, caller, body.url)
    return {"code": 200, "clip_id": audio.id, "message": "success"}


@router.get("/task/{task_id}", responses=_ERRORS)
def suno_task(request: Request, ctx: Ctx, caller: Caller, task_id: str) -> Any:
    """A clip (an uploaded audio's id) or a MIDI task, as aimusicapi's task list."""
    task, audio = ctx.task_or_audio(caller, task_id)
    if task is not None:
        item = aimusic_task_item(ctx, task, audio)
    else:
        assert audio is not None
        item = aimusic_clip(ctx, audio, base_url(request))
    return {"code": 200, "message": "success", "data": [item]}
