"""How the score package says that an optional library it needs is not installed.

The error itself, `ScoreUnavailableError`, lives in `stemscribe.errors` with the others.
"""

from __future__ import annotations

import importlib

from stemscribe.errors import ScoreUnavailableError

__all__ = ["ScoreUnavailableError", "missing", "require_libraries"]

# What each part of the score package imports: MusicXML, the SVG pages, their PDF.
LIBRARIES = {"music21": "MusicXML", "verovio": "Engraving pages", "cairosvg": "A PDF of the pages",
             "pypdf": "A PDF of the pages"}  # fmt: skip


def missing(library: str, purpose: str) -> ScoreUnavailableError:
    return ScoreUnavailableError(
        f"{purpose} needs {library}, which is not installed: pip install 'stemscribe[score]' "
        f"(or pip install {library})"
    )


def require_libraries(*, pdf: bool = True) -> None:
    """Raise ScoreUnavailableError, naming the first missing library, unless MusicXML and the pages (and
    with `pdf` their PDF) can be made here; for a command to fail before it does the long work."""
    for library, purpose in LIBRARIES.items():
        if not pdf and library in ("cairosvg", "pypdf"):
            continue
        try:
            importlib.import_module(library)
        except ImportError:
            raise missing(library, purpose) from None
        except OSError as exc:  # cairosvg without the cairo library itself
            raise missing(library, f"{purpose} ({exc})") from None
