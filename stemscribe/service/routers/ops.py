"""Signed downloads (`/files/...`), `/health` and `/metrics`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stemscribe.service.context import SCORE_KINDS
from stemscribe.service.deps import Ctx, metrics_access
from stemscribe.service.downloads import send_file
from stemscribe.service.routers.score import send_score_file

router = APIRouter(tags=["ops"])


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
    kind: Literal["audio", "midi", "midiq", "musicxml", "pdf", "svg"],
    ident: str,
    e: Annotated[int, Query(description="expiry, epoch seconds")],
    s: Annotated[str, Query(description="signature")],
) -> Response:
    """A file behind a signed link (the `midi_url`/`audio_url`/`musicxml_url`/`pdf_url` of the dialects,
    the `links` of `/v1/transcriptions/{id}/score`); no token needed."""
    ctx.check_link(kind, ident, e, s)
    source, media, filename = ctx.download(kind, ident)
    if kind in SCORE_KINDS:
        return send_score_file(source, media, filename)
    return send_file(source, media, filename)


@router.get("/health")
def health(ctx: Ctx) -> dict[str, Any]:
    """Liveness and queue depth (no key needed, nothing per key): `{"status": "ok", "workers",
    "queue": {"queued", "running"}}`."""
    return ctx.health()


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(metrics_access)],
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
def metrics(ctx: Ctx) -> Response:
    """Prometheus metrics: requests by route and status, latency, tasks by state, webhook deliveries."""
    registry = ctx.metrics.registry  # type: ignore[attr-defined]
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
