"""Sheet music of a finished transcription under `/v1`: MusicXML, PDF, SVG pages and their index.

Included before the native router, whose `/v1/transcriptions/{task_id}` would otherwise take
`<id>.musicxml` and `<id>.pdf` for task ids.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from stemscribe.service.context import MUSICXML_TYPE
from stemscribe.service.deps import Caller, Ctx
from stemscribe.service.downloads import send_file
from stemscribe.service.shapes import native_score

router = APIRouter(prefix="/v1", tags=["score"])
SVG_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or unknown API key"},
    404: {"description": "No such task (or page)"},
    409: {"description": "Not finished"},
    410: {"description": "Expired"},
    422: {"description": "The score of this result could not be engraved (`score_failed`)"},
    503: {"description": "The server lacks the score extra (`score_unavailable`)"},
}


def send_score_file(source: Path | BinaryIO, media: str, filename: str) -> Response:
    """A score file as the answer; SVG pages with a policy that lets them run nothing if opened alone."""
    headers = {"X-Content-Type-Options": "nosniff"}
    if media == "image/svg+xml":
        headers["Content-Security-Policy"] = SVG_POLICY
    return send_file(source, media, filename, headers)


@router.get(
    "/transcriptions/{task_id}/score",
    responses={
        **_ERRORS,
        200: {
            "description": "`{id, title, time_signature, key, pages, musicxml_url, pdf_url, page_urls, "
            "links: {musicxml, pdf, pages}}` (links are signed: no token needed)"
        },
    },
)
async def get_score(ctx: Ctx, caller: Caller, task_id: str) -> JSONResponse:
    """The score's index: analysis, page count and links (engraves the pages on the first call)."""
    task = ctx.get_task(caller, task_id)
    pages = await run_in_threadpool(ctx.score_pages, task)
    return JSONResponse(native_score(ctx, task, pages))


@router.get(
    "/transcriptions/{task_id}.musicxml",
    response_class=Response,
    responses={**_ERRORS, 200: {"content": {MUSICXML_TYPE: {}}}},
)
def get_musicxml(ctx: Ctx, caller: Caller, task_id: str) -> Response:
    """The score as MusicXML: one part per instrument, key, metre, chord symbols, tempo mark."""
    return send_score_file(*ctx.score_file(ctx.get_task(caller, task_id), "musicxml"))


@router.get(
    "/transcriptions/{task_id}.pdf",
    response_class=Response,
    responses={**_ERRORS, 200: {"content": {"application/pdf": {}}}},
)
def get_pdf(ctx: Ctx, caller: Caller, task_id: str) -> Response:
    """The engraved pages as one PDF (A4)."""
    return send_score_file(*ctx.score_file(ctx.get_task(caller, task_id), "pdf"))


@router.get(
    "/transcriptions/{task_id}/score/{page}.svg",
    response_class=Response,
    responses={**_ERRORS, 200: {"content": {"image/svg+xml": {}}}},
)
def get_page(ctx: Ctx, caller: Caller, task_id: str, page: int) -> Response:
    """One engraved page as SVG (pages count from 1)."""
    return send_score_file(*ctx.score_file(ctx.get_task(caller, task_id), "svg", page))
