"""The error the score package raises when an optional library it needs is not installed."""

from __future__ import annotations

from stemscribe.errors import StemscribeError


class ScoreUnavailableError(StemscribeError):
    """A library that sheet music needs (music21, verovio, cairosvg, pypdf) is not installed."""


def missing(library: str, purpose: str) -> ScoreUnavailableError:
    return ScoreUnavailableError(
        f"{purpose} needs {library}, which is not installed: pip install 'stemscribe[score]' "
        f"(or pip install {library})"
    )
