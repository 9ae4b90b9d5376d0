"""Fixtures of the page's tests: Debian's Chromium driven by Playwright, loopback servers, an API double.

pytest runs with `--import-mode=importlib`, so test modules cannot import helpers from beside them;
everything they share is here and reaches them as fixtures.

The API double (`fake_api`) follows the native /v1 contract the page relies on (uploads, transcription
tasks that move through the stages on each poll, recent jobs, .mid/.json written by the real MIDI
writer, the score's index, SVG pages, MusicXML and PDF made by the real score package), so that the
page's error, key and rendering paths run in a browser without the model.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, File, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from stemscribe.result import Result
from stemscribe.web.routes import router as web_router

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"


def chromium_executable() -> str | None:
    """Debian's Chromium, or the binary named by `$STEMSCRIBE_TEST_CHROMIUM` (empty: none)."""
    if "STEMSCRIBE_TEST_CHROMIUM" in os.environ:
        named = os.environ["STEMSCRIBE_TEST_CHROMIUM"]
        return named if named and Path(named).is_file() else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run `app` with uvicorn on a free loopback port in a thread; yields its base URL."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="web-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class PageWatch:
    """Everything a page did that a test may want to assert on: errors and the URLs it asked for."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.on("console", lambda msg: msg.type == "error" and self.errors.append(f"console: {msg.text}"))
        page.on("request", lambda req: self.requests.append(req.url))

    def outside(self, origin: str) -> list[str]:
        """Requested URLs that were not this origin, blob: or data:."""
        return [
            u for u in self.requests if not (u.startswith(origin + "/") or u.startswith(("blob:", "data:")))
        ]


# ---- the API double --------------------------------------------------------------------------------

STAGES = ["queued", "loading", "transcribing", "drums", "assigning", "done"]


def sample_result() -> dict[str, Any]:
    """Three instruments (piano, bass, drums) over four seconds: 8 + 4 + 8 notes."""
    piano = [
        {"pitch": p, "start": i * 0.5, "end": i * 0.5 + 0.45, "velocity": 0.8}
        for i, p in enumerate([60, 64, 67, 72, 67, 64, 60, 55])
    ]
    bass = [
        {"pitch": 36 + (i % 2) * 7, "start": i * 1.0, "end": i * 1.0 + 0.9, "velocity": 0.7} for i in range(4)
    ]
    drums = [
        {"pitch": 36 if i % 2 == 0 else 38, "start": i * 0.5, "end": i * 0.5 + 0.1, "velocity": 0.9}
        for i in range(8)
    ]
    return {
        "instruments": [
            {
                "name": "Acoustic Grand Piano",
                "program": 0,
                "is_drum": False,
                "family": "piano",
                "notes": piano,
            },
            {
                "name": "Electric Bass (finger)",
                "program": 33,
                "is_drum": False,
                "family": "bass",
                "notes": bass,
            },
            {"name": "Drums", "program": 0, "is_drum": True, "family": "drums", "notes": drums},
        ],
        "duration": 4.0,
        "stem": "auto",
        "tempo": 120.0,
        "beats": [i * 0.5 for i in range(8)],
        "separator": "none",
    }


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class FakeTask:
    id: str
    audio_id: str | None
    filename: str | None
    stem: str
    fail: dict[str, str] | None
    created_at: str = field(default_factory=_now)
    polls: int = 0


@dataclass
class FakeState:
    api_key: str | None = None
    result: dict[str, Any] = field(default_factory=sample_result)
    uploads: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)
    tasks: dict[str, FakeTask] = field(default_factory=dict)
    order: itertools.count = field(default_factory=itertools.count)
    pages: list[str] | None = None
    score_requests: int = 0
    score_error: tuple[int, str, str] | None = None  # (status, code, message) answered by /score


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def create_fake_app(*, api_key: str | None = None, result: dict[str, Any] | None = None) -> FastAPI:
    """The page plus a fake /v1; with `api_key`, every /v1 call needs `Authorization: Bearer <key>`.

    Every job ends with `result` (default: `sample_result()`).
    """
    app = FastAPI()
    state = FakeState(api_key=api_key, result=result or sample_result())
    app.state.fake = state

    @app.middleware("http")
    async def auth(request: Request, call_next):  # type: ignore[no-untyped-def]
        if request.url.path.startswith("/v1/") and state.api_key:
            if request.headers.get("authorization") != f"Bearer {state.api_key}":
                return _error(401, "invalid_token", "Missing or wrong API key.")
        return await call_next(request)

    def task_json(task: FakeTask) -> dict[str, Any]:
        stage = STAGES[min(task.polls, len(STAGES) - 1)]
        finished = stage == "done"
        failed = finished and task.fail is not None
        base = f"/v1/transcriptions/{task.id}"
        return {
            "id": task.id,
            "state": ("failed" if failed else "succeeded")
            if finished
            else ("queued" if task.polls == 0 else "running"),
            "stage": stage,
            "progress": 1.0 if finished else task.polls / (len(STAGES) - 1),
            "error": task.fail if failed else None,
            "audio_id": task.audio_id,
            "filename": task.filename,
            "stem": task.stem,
            "created_at": task.created_at,
            "started_at": task.created_at if task.polls else None,
            "finished_at": _now() if finished else None,
            "result": {**state.result, "stem": task.stem} if finished and not failed else None,
            "midi_url": f"{base}.mid",
            "midi_quantized_url": f"{base}.mid?quantize=1",
            "json_url": f"{base}.json",
            "musicxml_url": f"{base}.musicxml",
            "pdf_url": f"{base}.pdf",
            "score_url": f"{base}/score",
            "audio_url": f"/v1/uploads/{task.audio_id}/audio" if task.audio_id else None,
        }

    @app.post("/v1/uploads", status_code=201)
    async def upload(file: UploadFile = File(...)) -> dict[str, Any]:  # noqa: B008
        data = await file.read()
        upload_id = uuid.uuid4().hex
        state.uploads[upload_id] = (file.filename or "upload", file.content_type or "", data)
        return {
            "id": upload_id,
            "filename": file.filename,
            "duration": 4.0,
            "size": len(data),
            "content_type": file.content_type,
            "created_at": _now(),
            "audio_url": f"/v1/uploads/{upload_id}/audio",
        }

    @app.get("/v1/uploads/{upload_id}/audio")
    def upload_audio(upload_id: str) -> Response:
        if upload_id not in state.uploads:
            return _error(404, "not_found", "No such upload.")
        _, content_type, data = state.uploads[upload_id]
        return Response(data, media_type=content_type or "application/octet-stream")

    @app.post("/v1/transcriptions", status_code=202)
    async def create(request: Request) -> Any:
        body = await request.json()
        audio_id = body.get("audio_id")
        if audio_id and audio_id not in state.uploads:
            return _error(404, "not_found", f"No upload with id {audio_id}.")
        if not audio_id and not body.get("audio_url"):
            return _error(422, "invalid_request", "Give audio_id or audio_url.")
        filename = state.uploads[audio_id][0] if audio_id else str(body["audio_url"]).rsplit("/", 1)[-1]
        fail = None
        if "notaudio" in filename:
            fail = {"code": "bad_audio", "message": f"{filename}: not audio (tried soundfile, PyAV)"}
        task = FakeTask(uuid.uuid4().hex, audio_id, filename, str(body.get("stem", "auto")), fail)
        state.tasks[task.id] = task
        return task_json(task)

    @app.get("/v1/transcriptions")
    def list_tasks(limit: int = 20) -> dict[str, Any]:
        items = [task_json(t) for t in reversed(state.tasks.values())][:limit]
        return {"items": items, "count": len(items)}

    @app.get("/v1/transcriptions/{task_id}.mid")
    def midi(task_id: str, quantize: int = 0) -> Response:
        if task_id not in state.tasks:
            return _error(404, "not_found", "No such task.")
        data = Result.from_dict(state.result).to_midi_bytes(quantize=bool(quantize))
        return Response(data, media_type="audio/midi")

    @app.get("/v1/transcriptions/{task_id}.json")
    def result_json(task_id: str) -> Any:
        if task_id not in state.tasks:
            return _error(404, "not_found", "No such task.")
        return state.result

    def score_pages() -> list[str]:
        """The sample result's pages, engraved by the real library once per app."""
        if state.pages is None:
            from stemscribe.score.engrave import render_svg

            state.pages = render_svg(Result.from_dict(state.result).to_musicxml(title="sample"))
        return state.pages

    @app.get("/v1/transcriptions/{task_id}/score")
    def score_index(task_id: str) -> Any:
        if task_id not in state.tasks:
            return _error(404, "not_found", "No such task.")
        state.score_requests += 1
        if state.score_error is not None:
            return _error(*state.score_error)
        n = len(score_pages())
        base = f"/v1/transcriptions/{task_id}"
        data = Result.from_dict(state.result).to_dict()
        return {
            "id": task_id,
            "title": "sample",
            "time_signature": data["time_signature"],
            "key": data["key"],
            "pages": n,
            "musicxml_url": f"{base}.musicxml",
            "pdf_url": f"{base}.pdf",
            "page_urls": [f"{base}/score/{i}.svg" for i in range(1, n + 1)],
        }

    @app.get("/v1/transcriptions/{task_id}/score/{page}.svg")
    def score_page(task_id: str, page: int) -> Response:
        pages = score_pages()
        if task_id not in state.tasks or not 1 <= page <= len(pages):
            return _error(404, "not_found", "No such page.")
        return Response(pages[page - 1], media_type="image/svg+xml")

    @app.get("/v1/transcriptions/{task_id}.musicxml")
    def score_musicxml(task_id: str) -> Response:
        if task_id not in state.tasks:
            return _error(404, "not_found", "No such task.")
        data = Result.from_dict(state.result).to_musicxml(title="sample")
        return Response(data, media_type="application/vnd.recordare.musicxml+xml")

    @app.get("/v1/transcriptions/{task_id}.pdf")
    def score_pdf(task_id: str) -> Response:
        if task_id not in state.tasks:
            return _error(404, "not_found", "No such task.")
        from stemscribe.score.engrave import render_pdf

        return Response(render_pdf(score_pages()), media_type="application/pdf")

    @app.get("/v1/transcriptions/{task_id}")
    def get_task(task_id: str) -> Any:
        task = state.tasks.get(task_id)
        if task is None:
            return _error(404, "not_found", "No such task.")
        task.polls += 1
        return task_json(task)

    app.include_router(web_router)
    return app


# ---- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A headless Chromium (Debian's, never Playwright's download); skips when either is missing."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
    )
    executable = chromium_executable()
    if executable is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install -y chromium chromium-driver)")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go (gitignored `test-artifacts/web/`)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def serve_app() -> Callable[[Any], contextlib.AbstractContextManager[str]]:
    """`with serve_app(app) as base_url:` runs an ASGI app on a free loopback port."""
    return serve


@pytest.fixture(scope="session")
def fake_api() -> Callable[..., FastAPI]:
    """`fake_api(api_key=None)` builds the page plus the /v1 double; `app.state.fake` holds its state."""
    return create_fake_app


@pytest.fixture()
def page_on(browser: Any) -> Iterator[Callable[..., tuple[Any, PageWatch]]]:
    """`page_on(base_url, width=1400, height=900, path="/")`: the page in a fresh context, (page, watch)."""
    contexts: list[Any] = []

    def open_page(
        base: str, *, width: int = 1400, height: int = 900, path: str = "/"
    ) -> tuple[Any, PageWatch]:
        context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
        contexts.append(context)
        page = context.new_page()
        watch = PageWatch(page)
        page.goto(base + path)
        page.wait_for_function("() => window.stemscribe !== undefined")
        return page, watch

    yield open_page
    for context in contexts:
        context.close()
