"""Serve the web page at `/` and its assets at `/static/...`, straight from the package.

The page talks only to its own origin (the native `/v1` API); the Content-Security-Policy sent with
it makes the browser refuse any other request, so the page works offline and leaks nothing.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, JSONResponse

from stemscribe.transcription.drums import DRUM_CLASS_TABLE

STATIC_DIR = Path(__file__).resolve().parent / "static"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    )
)

_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
}

# Revalidate on each load (a cheap 304) so that an upgrade never mixes old and new modules.
_ASSET_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}

router = APIRouter(include_in_schema=False)


def resolve_asset(relative: str) -> Path:
    """Return the file under STATIC_DIR named by `relative`, or raise 404 (also for `..` escapes)."""
    if not relative or "\\" in relative or "\x00" in relative:
        raise HTTPException(status_code=404, detail="not found")
    path = (STATIC_DIR / relative).resolve()
    if not path.is_relative_to(STATIC_DIR) or not path.is_file() or path.suffix not in _MEDIA_TYPES:
        raise HTTPException(status_code=404, detail="not found")
    return path


@router.get("/", response_class=FileResponse)
def index() -> FileResponse:
    """The page itself."""
    headers = dict(_ASSET_HEADERS)
    headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    headers["Referrer-Policy"] = "no-referrer"
    return FileResponse(STATIC_DIR / "index.html", media_type=_MEDIA_TYPES[".html"], headers=headers)


@router.get("/static/{relative:path}", response_class=FileResponse)
def static_asset(relative: str) -> FileResponse:
    """One of the page's assets (modules, styles, icons)."""
    path = resolve_asset(relative)
    return FileResponse(path, media_type=_MEDIA_TYPES[path.suffix], headers=_ASSET_HEADERS)


@router.get("/drum-classes.json", response_class=JSONResponse)
def drum_classes() -> JSONResponse:
    """The drum class table the library writes and scores with (`DRUM_CLASS_TABLE`), for the piano
    roll's drum lane: each class's key, name, GM (and GS) keys folded onto it, and whether it is a kit
    piece."""
    classes = [
        {"key": c.key, "name": c.name, "members": list(c.members + c.extra), "kit": c.kit}
        for c in DRUM_CLASS_TABLE
    ]
    return JSONResponse({"classes": classes}, headers=_ASSET_HEADERS)
