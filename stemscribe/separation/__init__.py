"""Model-based stem separation (Demucs) behind `stemscribe.separation.hpss`'s `Separator` seam.

Importing this package is cheap: it registers the "demucs" separator (and one alias per model
name: "htdemucs", "htdemucs_6s", "htdemucs_ft") with `stemscribe.separation.hpss.register_separator`,
and imports torch only when one is built. `demucs_available()` says, without importing torch,
whether `get_separator("demucs")` can work here.
"""

from __future__ import annotations

import importlib.util
from functools import partial
from pathlib import Path

from stemscribe.separation.files import write_stems
from stemscribe.separation.hpss import Separator, register_separator
from stemscribe.separation.stemsets import STEM_TITLES, StemSet, select_stems, vocals_instrumental
from stemscribe.separation.weights import DEFAULT_MODEL, MODELS, fetch_model, list_models, model_status


def torch_available() -> bool:
    """Whether the separation extra (torch and demucs) is installed; imports neither."""
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "demucs"))


def demucs_available(model: str = DEFAULT_MODEL, *, root: Path | None = None) -> bool:
    """Whether `get_separator("demucs", model=model)` can load here: the extra and the weights present."""
    return torch_available() and model_status(model, root=root, verify=False).ready


def _build_demucs(**options: object) -> Separator:
    """Build a `DemucsSeparator`; SeparationUnavailableError without torch/demucs or the weights."""
    from stemscribe.separation.demucs import DemucsSeparator

    return DemucsSeparator(**options)  # type: ignore[arg-type]


register_separator("demucs", _build_demucs)
for _name in MODELS:
    register_separator(_name, partial(_build_demucs, model=_name))

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "STEM_TITLES",
    "StemSet",
    "demucs_available",
    "fetch_model",
    "list_models",
    "model_status",
    "select_stems",
    "torch_available",
    "vocals_instrumental",
    "write_stems",
]
