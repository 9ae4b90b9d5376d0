"""Signed downloads (`/files/...`), `/health` and `/metrics`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stemscribe.service.deps import Ctx
from stemscribe.service.errors import ApiError

router = APIRouter(tags=["ops"])

_KINDS = {"midi": ("result.mid", "audio/midi"), "midiq": ("result.quantized.mid", "audio/midi")}


@router.get(
    "/files/{kind}/{ident}",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}}},
        403: {"description": "bad signature"},
        410: {"description": "expired"},
    },
)
def download(
    ctx: Ctx,
    kind: Literal["audio", "midi", "midiq"],
    ident: str,
    e: Annotated[int, Query(description="expiry, epoch seconds")],
    s: Annotated[str, Query(description="signature")],
) -> Response:
    """A file behind a signed link (the `midi_url`/`audio_url` of the dialects); no token needed."""
    ctx.check_link(kind, ident, e, s)
    if kind == "audio":
        audio = ctx.store.get_audio(ident, None)
        if audio is None:
            raise ApiError(404, "not_found", f"audio {ident!r} not found")
        if audio.purged_at is not None:
            raise ApiError(410, "expired", f"audio {ident!r} expired and was deleted")
        source = ctx.audio_file(audio)
        media, filename = audio.content_type, audio.filename
    else:
        task = ctx.store.get_task(ident, None)
        if task is None:
            raise ApiError(404, "not_found", f"task {ident!r} not found")
        name, media = _KINDS[kind]
        source = ctx.artifact(task, name)
        filename = (
            f"{task.filename.rsplit('.', 1)[0] or task.id}{'.quantized' if kind == 'midiq' else ''}.mid"
        )
    if hasattr(source, "read"):
        return StreamingResponse(source, media_type=media)  # type: ignore[arg-type]
    return FileResponse(source, media_type=media, filename=filename)


@router.get("/health")
def health(ctx: Ctx) -> dict[str, Any]:
    """Liveness plus the queue: `{"status": "ok", "workers", "tasks": {state: count}}`."""
    runner = getattr(ctx, "runner", None)
    return {
        "status": "ok",
        "workers": runner.alive() if runner is not None else 0,
        "tasks": ctx.store.count_tasks(),
    }


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def metrics(ctx: Ctx) -> Response:
    """Prometheus metrics: requests by route and status, latency, tasks by state, webhook deliveries."""
    registry = ctx.metrics.registry  # type: ignore[attr-defined]
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
