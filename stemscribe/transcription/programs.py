"""General MIDI programs of a family's notes: which of its family's programs an instrument sounds like.

The family classifier (`transcription.timbre`) says who plays a note: bass, guitar, strings... This
module says which General MIDI program of that family: a small MLP trained by `training/program` on
the same timbre features (`timbre.note_features`) gives logits over all 128 programs; a note's
probabilities are the softmax over its family's programs only (`family_programs`), and an
instrument's program is the one whose mean probability over its notes is highest.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from stemscribe.errors import ModelError
from stemscribe.result import NoteEvent
from stemscribe.stems import Family, family_of_program
from stemscribe.transcription.timbre import FEATURE_VERSION, N_FEATURES, note_features
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


_load_lock = threading.Lock()


@lru_cache(maxsize=4)
def _load(path: Path, threads: int) -> object:
    session, meta = open_session(path, threads, "program model")
    if int(meta.get("n_programs", "-1")) != N_PROGRAMS:
        raise ModelError(
            f"program model {path} predicts {meta.get('n_programs')} programs, expected {N_PROGRAMS}"
        )
    if (
        int(meta.get("feature_version", "-1")) != FEATURE_VERSION
        or int(meta.get("n_features", "-1")) != N_FEATURES
    ):
        raise ModelError(f"program model {path} was trained on other features than this stemscribe computes")
    return session


class ProgramClassifier:
    """Says which General MIDI program of its family an instrument's notes sound like.

    Weights load once per file and are shared; the methods are thread-safe.
    """

    def __init__(self, weights: str | Path | None = None, *, threads: int = 0) -> None:
        path = Path(weights) if weights is not None else default_weights_path()
        if not path.is_file():
            raise ModelError(f"program model weights not found at {path}")
        with _load_lock:
            self._session = _load(path.resolve(), int(threads))

    @staticmethod
    def available(weights: str | Path | None = None) -> bool:
        """True when the weights file and its checksum are present (not yet verified)."""
        path = Path(weights) if weights is not None else default_weights_path()
        return path.is_file() and path.with_name(path.name + ".sha256").is_file()

    def logits(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """(n, N_PROGRAMS) logits of (n, N_FEATURES) timbre features."""
        if features.shape[0] == 0:
            return np.zeros((0, N_PROGRAMS), np.float32)
        try:
            (out,) = self._session.run(None, {"features": features})  # type: ignore[attr-defined]
        except Exception as exc:  # onnxruntime's errors are not typed
            raise ModelError(f"program model failed to run: {exc}") from exc
        return np.asarray(out, dtype=np.float32)

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
        pitch = np.fromiter((n.pitch for n in notes), np.float32, len(notes))
        start = np.fromiter((n.start for n in notes), np.float64, len(notes))
        end = np.fromiter((n.end for n in notes), np.float64, len(notes))
        probs = self.probabilities(note_features(samples, pitch, start, end), family)
        return family_programs(family)[int(probs.mean(axis=0).argmax())]
