"""A finished transcription's sheet music in artifact storage: MusicXML, SVG pages and a PDF.

Each file is made from the task's stored result.json the first time it is asked for, then kept beside
the task's other artifacts (and deleted with them). The worker does not engrave: a 30-second song takes
about a second, but a 10-minute one takes some 10 s for the MusicXML and pages and 20 s more for the PDF,
which only those who open the score should wait for. music21 and Verovio keep process-wide state, so one
score is made at a time per process.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from stemscribe.errors import EngravingError, StemscribeError
from stemscribe.jobs.storage import ArtifactStorage, result_key
from stemscribe.result import Result

logger = logging.getLogger(__name__)

MUSICXML = "score.musicxml"
PDF = "score.pdf"
PAGES = "score.pages.json"  # {"pages": n}, written after the pages themselves

_LOCK = threading.RLock()
T = TypeVar("T")


def page_name(page: int) -> str:
    """The artifact name of SVG page `page` (from 1)."""
    return f"score-{page}.svg"


def _engrave(what: str, make: Callable[[], T]) -> T:
    """Run `make`; a failure that is not one of stemscribe's own becomes an EngravingError naming `what`."""
    try:
        return make()
    except StemscribeError:
        raise
    except Exception as exc:  # noqa: BLE001 - music21/Verovio/CairoSVG failures on a result become a 422
        logger.exception("engraving %s failed", what)
        raise EngravingError(f"could not make the {what}: {type(exc).__name__}: {exc}") from None


def _result(storage: ArtifactStorage, task_id: str) -> Result:
    return Result.from_dict(json.loads(storage.get_bytes(result_key(task_id, "result.json"))))


def musicxml(storage: ArtifactStorage, task_id: str, *, title: str) -> bytes:
    """The task's MusicXML, made and stored on first use."""
    key = result_key(task_id, MUSICXML)
    with _LOCK:
        if storage.exists(key):
            return storage.get_bytes(key)
        result = _result(storage, task_id)
        data = _engrave("MusicXML", lambda: result.to_musicxml(title=title))
        storage.put_bytes(key, data)
        return data


def page_count(storage: ArtifactStorage, task_id: str, *, title: str) -> int:
    """How many SVG pages the task's score has, engraving and storing them on first use."""
    from stemscribe.score.engrave import render_svg

    key = result_key(task_id, PAGES)
    with _LOCK:
        if storage.exists(key):
            return int(json.loads(storage.get_bytes(key))["pages"])
        xml = musicxml(storage, task_id, title=title)
        pages = _engrave("pages", lambda: render_svg(xml))
        for i, svg in enumerate(pages, start=1):
            storage.put_bytes(result_key(task_id, page_name(i)), svg.encode("utf-8"))
        storage.put_bytes(key, json.dumps({"pages": len(pages)}).encode())
        return len(pages)


def ensure_pdf(storage: ArtifactStorage, task_id: str, *, title: str) -> str:
    """Make and store the PDF of the task's pages unless it is there; return its artifact name."""
    from stemscribe.score.engrave import render_pdf

    with _LOCK:
        if not storage.exists(result_key(task_id, PDF)):
            n = page_count(storage, task_id, title=title)
            pages = [
                storage.get_bytes(result_key(task_id, page_name(i))).decode("utf-8") for i in range(1, n + 1)
            ]
            storage.put_bytes(result_key(task_id, PDF), _engrave("PDF", lambda: render_pdf(pages)))
    return PDF
