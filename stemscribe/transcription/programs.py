"""General MIDI programs of a family's notes: which of its family's programs an instrument sounds like.

The family classifier (`transcription.timbre`) says who plays a note: bass, guitar, strings... This
module says which General MIDI program of that family: a small MLP trained by `training/program` on
the same timbre features (`timbre.note_features`) gives logits over all 128 programs; a note's
probabilities are the softmax over its family's programs only (`family_programs`), and an
instrument's program is the one whose mean probability over its notes is highest.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from stemscribe.errors import ModelError
from stemscribe.result import NoteEvent
from stemscribe.stems import Family, family_of_program
from stemscribe.transcription.timbre import NoteFeatureModel, check_features, notes_features
from stemscribe.transcription.weights import open_session, shipped_weights

WEIGHTS_NAME = "program.onnx"
N_PROGRAMS = 128


@lru_cache(maxsize=16)
def family_programs(family: Family) -> tuple[int, ...]:
    """The General MIDI programs (0-based) of a pitched family, ascending."""
    return tuple(p for p in range(N_PROGRAMS) if family_of_program(p) is family)


def family_mask() -> npt.NDArray[np.bool_]:
    """(len(Family), N_PROGRAMS) True where a program belongs to the family (rows in `Family` order)."""
    mask = np.zeros((len(Family), N_PROGRAMS), bool)
    for p in range(N_PROGRAMS):
        mask[list(Family).index(family_of_program(p)), p] = True
    return mask


def default_weights_path() -> Path:
    """The weights shipped inside the package."""
    return shipped_weights(WEIGHTS_NAME)


@lru_cache(maxsize=4)
def _load(path: Path, threads: int) -> object:
    session, meta = open_session(path, threads, "program model")
    if int(meta.get("n_programs", "-1")) != N_PROGRAMS:
        raise ModelError(
            f"program model {path} predicts {meta.get('n_programs')} programs, expected {N_PROGRAMS}"
        )
    check_features(meta, path, "program model")
    return session


class ProgramClassifier(NoteFeatureModel):
    """Says which General MIDI program of its family an instrument's notes sound like."""

    WHAT = "program model"
    WEIGHTS_NAME = WEIGHTS_NAME
    LOAD = staticmethod(_load)

    def logits(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """(n, N_PROGRAMS) logits of (n, N_FEATURES) timbre features."""
        return self._run(features, N_PROGRAMS)

    def probabilities(self, features: npt.NDArray[np.float32], family: Family) -> npt.NDArray[np.float32]:
        """(n, len(family_programs(family))) each note's probabilities over its family's programs."""
        logits = self.logits(features)[:, list(family_programs(family))].astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True, initial=-np.inf) if len(logits) else 0.0
        e = np.exp(logits)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    def pick(self, samples: npt.NDArray[np.float32], family: Family, notes: Sequence[NoteEvent]) -> int:
        """The program of `family` whose mean probability over `notes` in (n,) mono 22.05 kHz audio is
        highest; `notes` must not be empty."""
        if not notes:
            raise ValueError("a program is picked from at least one note")
        return self.pick_features(notes_features(samples, notes), family)

    def pick_features(self, features: npt.NDArray[np.float32], family: Family) -> int:
        """The program of `family` whose mean probability over (n, N_FEATURES) notes' timbre features
        (`timbre.notes_features`; n > 0) is highest."""
        if len(features) == 0:
            raise ValueError("a program is picked from at least one note")
        probs = self.probabilities(features, family)
        return family_programs(family)[int(probs.mean(axis=0).argmax())]
