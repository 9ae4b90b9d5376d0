"""aimusicapi's Suno API (`/api/v1/suno/...`): midi, upload, task lookup."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from stemscribe.jobs.models import TaskKind, TaskState
from stemscribe.service.deps import Caller, Ctx, base_url
from stemscribe.service.errors import ApiError
from stemscribe.service.shapes import AIMUSIC_STATES, aimusic_clip, aimusic_midi_answer, aimusic_pending, iso

router = APIRouter(prefix="/api/v1/suno", tags=["aimusicapi"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "`{code: 400, message}` validation"},
    401: {"description": "`{code: 401, message}` auth"},
    403: {"description": "`{code: 403, message}` revoked key"},
    404: {"description": "`{code: 404, message}` no such clip"},
    500: {"description": "`{code: 500, message}` the transcription failed"},
}


class MidiRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    clip_id: str = Field(min_length=1)


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    url: str = Field(min_length=1)


@router.post("/midi", responses=_ERRORS)
async def suno_midi(request: Request, ctx: Ctx, caller: Caller, body: MidiRequest) -> Any:
    """The MIDI of a clip. Waits up to `aimusic_wait_s`; before the result is ready it answers
    `{"code": 202, ...}` and the same request (same clip_id) can be repeated until `code` is 200."""
    audio = ctx.get_audio(caller, body.clip_id)
    task = ctx.store.find_task(
        caller.id, kind=TaskKind.TRANSCRIBE.value, audio_id=audio.id, dialect="aimusicapi"
    )
    if task is None:
        task = ctx.create_task(
            caller,
            kind=TaskKind.TRANSCRIBE,
            dialect="aimusicapi",
            audio=audio,
            request=body.model_dump(exclude_none=True),
            base_url=base_url(request),
        )
    task = await ctx.wait(task, ctx.settings.aimusic_wait_s)
    if task.state == TaskState.SUCCEEDED.value:
        return aimusic_midi_answer(ctx, task)
    if task.state == TaskState.FAILED.value:
        status = 400 if task.error_code in ("bad_audio", "invalid_option") else 500
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
    task = ctx.store.get_task(task_id, caller.id)
    if task is not None:
        audio = ctx.store.get_audio(task.audio_id, caller.id)
        item: dict[str, Any] = {
            "clip_id": task.audio_id,
            "task_id": task.id,
            "state": "expired" if ctx.is_expired(task) else AIMUSIC_STATES.get(task.state, task.state),
            "title": audio.title if audio else "",
            "audio_url": ctx.link(task.base_url, "audio", task.audio_id, task.expires_at),
            "duration": audio.duration if audio else None,
            "created_at": iso(task.created_at),
            "progress": task.progress,
            "error": task.error_message,
        }
        if task.state == TaskState.SUCCEEDED.value and not ctx.is_expired(task):
            item["midi_url"] = ctx.link(task.base_url, "midi", task.id, task.expires_at)
        return {"code": 200, "message": "success", "data": [item]}
    audio = ctx.store.get_audio(task_id, caller.id)
    if audio is None:
        raise ApiError(404, "not_found", f"task {task_id!r} not found")
    return {
        "code": 200,
        "message": "success",
        "data": [aimusic_clip(ctx, ctx.get_audio(caller, task_id), base_url(request))],
    }
