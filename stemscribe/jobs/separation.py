"""Which separation backend serves a stems request, which stem set it answers with, and their titles.

The stems themselves are the library's: the worker writes them with `separation.files.write_stems`,
as `stemscribe separate --format flac` does, so the CLI and the service give the same bytes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from stemscribe.errors import InvalidOptionError, SeparationUnavailableError
from stemscribe.separation.base import Separator, get_separator, separator_names
from stemscribe.separation.stemsets import STEM_TITLES, StemSet

FETCH_COMMAND = "stemscribe models fetch demucs"
VOCAL_MODES = frozenset({"stems", "separate_vocal"})
ALL_STEM_MODES = frozenset({"all_stems", "split_stem"})
MODES = VOCAL_MODES | ALL_STEM_MODES

_availability: dict[str, tuple[float, str | None]] = {}
_lock = threading.Lock()
_RECHECK_S = 60.0


@dataclass(frozen=True, slots=True)
class SeparationPlan:
    separator: str
    mode: str


def _unavailable_reason(name: str) -> str | None:
    """None when backend `name` can be built here, else why not (cached for a minute)."""
    now = time.monotonic()
    with _lock:
        cached = _availability.get(name)
        if cached is not None and (cached[1] is None or now - cached[0] < _RECHECK_S):
            return cached[1]
    if name not in separator_names():
        reason: str | None = (
            f"the {name!r} separation backend is not installed (pip install 'stemscribe[separation]')"
        )
    else:
        try:
            get_separator(name)
            reason = None
        except SeparationUnavailableError as exc:
            reason = str(exc)
    with _lock:
        _availability[name] = (now, reason)
    return reason


def plan_separation(mode: str) -> SeparationPlan:
    """Choose the backend for `mode` (stems/separate_vocal: vocals + instrumental; all_stems/split_stem).

    Demucs when it can run; `all_stems`/`split_stem` fall back to "hpss" (drums + harmonic). A vocals
    split without Demucs raises SeparationUnavailableError naming the command that fetches the weights.
    """
    if mode not in MODES:
        raise InvalidOptionError(
            f"unknown separation mode {mode!r}; choose one of: {', '.join(sorted(MODES))}"
        )
    reason = _unavailable_reason("demucs")
    if reason is None:
        return SeparationPlan("demucs", mode)
    if mode in ALL_STEM_MODES:
        return SeparationPlan("hpss", mode)
    hint = (
        ""
        if "models fetch" in reason
        else (
            "; install the separation extra (`pip install 'stemscribe[separation]'`) "
            f"and run `{FETCH_COMMAND}`"
        )
    )
    raise SeparationUnavailableError(
        f"vocal separation needs the Demucs model, which is not available here: {reason}{hint}"
    )


def build_separator(plan: SeparationPlan) -> Separator:
    return get_separator(plan.separator)


def stem_set_of(mode: str) -> StemSet:
    """The library's stem set for a request mode: vocals + instrumental, or every stem."""
    return StemSet.stems if mode in VOCAL_MODES else StemSet.all_stems


def stem_title(song: str, stem: str, mode: str) -> str:
    """ "<song> - Vocals" for the vocal modes, "<song> (Drums)" for the others (AceData's naming)."""
    label = STEM_TITLES.get(stem, stem.replace("_", " ").title())
    return f"{song} - {label}" if mode in VOCAL_MODES else f"{song} ({label})"
