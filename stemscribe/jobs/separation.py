"""Which separation backend serves a stems request, and how its stems become the clips we answer.

Kept in one place so the separation backends can change without touching the HTTP layer.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from stemscribe.audio import Audio
from stemscribe.errors import InvalidOptionError, SeparationUnavailableError
from stemscribe.separation.base import Separator, get_separator, separator_names

FETCH_COMMAND = "stemscribe models fetch demucs"
VOCAL_MODES = frozenset({"stems", "separate_vocal"})
ALL_STEM_MODES = frozenset({"all_stems", "split_stem"})
MODES = VOCAL_MODES | ALL_STEM_MODES

# Title suffix per stem, after AceData's "<song> (Drums)" naming.
STEM_TITLES = {
    "vocals": "Vocals",
    "instrumental": "Instrumental",
    "drums": "Drums",
    "bass": "Bass",
    "guitar": "Guitar",
    "piano": "Keyboard",
    "other": "Other",
    "harmonic": "Harmonic",
}

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


def shape_stems(stems: dict[str, Audio], mode: str) -> dict[str, Audio]:
    """The clips a mode answers with: vocals + instrumental (the sum of the rest), or every stem."""
    if mode in ALL_STEM_MODES:
        return dict(stems)
    if "vocals" not in stems:
        raise SeparationUnavailableError("the separation backend gave no vocals stem")
    rest = [a for name, a in stems.items() if name != "vocals"]
    vocals = stems["vocals"]
    instrumental = (
        np.sum([a.samples for a in rest], axis=0).astype(np.float32) if rest else vocals.samples * 0
    )
    return {"vocals": vocals, "instrumental": Audio(instrumental, vocals.sr)}


def stem_title(song: str, stem: str, mode: str) -> str:
    label = STEM_TITLES.get(stem, stem.replace("_", " ").title())
    return f"{song} - {label}" if mode in VOCAL_MODES else f"{song} ({label})"
