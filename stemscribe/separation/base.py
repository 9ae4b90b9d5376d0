"""The `Separator` seam and the static table of backends, each imported only when it is built.

Like Celery's `BACKEND_ALIASES`, `SEPARATORS` names every backend as "module:Class" plus the options
that alias fixes (a Demucs model name); nothing registers itself at import time.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from stemscribe.audio import Audio
from stemscribe.errors import InvalidOptionError
from stemscribe.progress import ProgressCallback
from stemscribe.separation.weights import DEFAULT_MODEL, model_status


@runtime_checkable
class Separator(Protocol):
    """Splits audio into named stems whose sum approximates the input."""

    name: str

    def stem_names(self) -> tuple[str, ...]:
        """The stems `separate` returns, in order."""
        ...

    def separate(self, audio: Audio, *, progress: ProgressCallback | None = None) -> dict[str, Audio]:
        """Return one Audio per stem, each at the input's rate and channel layout."""
        ...


_DEMUCS = "stemscribe.separation.demucs:DemucsSeparator"
SEPARATORS: dict[str, tuple[str, dict[str, str]]] = {
    "hpss": ("stemscribe.separation.hpss:HPSSSeparator", {}),
    "demucs": (_DEMUCS, {}),
    "htdemucs": (_DEMUCS, {"model": "htdemucs"}),
    "htdemucs_6s": (_DEMUCS, {"model": "htdemucs_6s"}),
    "htdemucs_ft": (_DEMUCS, {"model": "htdemucs_ft"}),
}
"""Backend name -> ("module:Class", default options). The Demucs aliases are the models of
`separation.weights.MODELS` (a test keeps the two in step)."""


def load_symbol(path: str) -> Any:
    """The object named by "package.module:attribute", importing its module now."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


def separator_names() -> list[str]:
    """Names of the separation backends (some may be unavailable here; see `get_separator`)."""
    return sorted(SEPARATORS)


def get_separator(name: str, **options: Any) -> Separator:
    """Build the backend called `name`; SeparationUnavailableError when it cannot run here."""
    try:
        target, fixed = SEPARATORS[name]
    except KeyError:
        raise InvalidOptionError(
            f"unknown separator {name!r}; known: {', '.join(separator_names())}"
        ) from None
    separator: Separator = load_symbol(target)(**{**fixed, **options})
    return separator


def torch_available() -> bool:
    """Whether the separation extra (torch and demucs) is installed; imports neither."""
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "demucs"))


def demucs_available(model: str = DEFAULT_MODEL, *, root: Path | None = None) -> bool:
    """Whether `get_separator("demucs", model=model)` can load here: the extra and the weights present."""
    return torch_available() and model_status(model, root=root, verify=False).ready
