"""Separation: audio to stems. `base` holds the `Separator` seam and the table of backends (`hpss`,
`demucs` and its models, each imported only when built); `stemsets` the stem sets and titles;
`files` the stem writer the CLI and the service share; `weights` the Demucs checkpoints; `cli` the
`separate` and `models` commands. Importing this package imports no torch.
"""

from __future__ import annotations

from stemscribe.separation.base import (
    SEPARATORS,
    Separator,
    demucs_available,
    get_separator,
    separator_names,
    torch_available,
)
from stemscribe.separation.files import write_stems
from stemscribe.separation.stemsets import STEM_TITLES, StemSet, select_stems, vocals_instrumental
from stemscribe.separation.weights import DEFAULT_MODEL, MODELS, fetch_model, list_models, model_status

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "SEPARATORS",
    "STEM_TITLES",
    "Separator",
    "StemSet",
    "demucs_available",
    "fetch_model",
    "get_separator",
    "list_models",
    "model_status",
    "select_stems",
    "separator_names",
    "torch_available",
    "vocals_instrumental",
    "write_stems",
]
