"""Progress reporting: library code calls a callback; the CLI draws a bar, the job runner stores it."""

from __future__ import annotations

from collections.abc import Callable

ProgressCallback = Callable[[str, float], None]
"""Called as `progress(stage, fraction)`: stage is a short word ("loading", "separating",
"transcribing", "drums", "assigning", "done"), fraction the share of the whole job done, 0..1."""


def report(progress: ProgressCallback | None, stage: str, fraction: float) -> None:
    """Call `progress` if there is one, clamping the fraction to 0..1."""
    if progress is not None:
        progress(stage, min(1.0, max(0.0, float(fraction))))
