from __future__ import annotations

import numpy as np

from stemscribe.transcription.notes import NoteArrays
from stemscribe.transcription.roles import assign_roles, smooth_family_probs


def _notes(rows: list[tuple[int, int, int]]) -> NoteArrays:
    a = np.array(rows, dtype=np.int64).reshape(-1, 3)
    return NoteArrays(a[:, 0], a[:, 1], a[:, 2], np.full(len(rows), 0.5, np.float32))


def test_roles_split_polyphonic_notes_by_their_twins() -> None:
    poly = _notes([(10, 50, 40), (10, 50, 64), (10, 50, 72), (60, 90, 43), (61, 90, 67)])
    bass = _notes([(11, 50, 40), (59, 90, 43), (100, 120, 41)])  # the last has no polyphonic twin
    lead = _notes([(12, 50, 72), (62, 90, 67), (58, 90, 43)])  # 43 is bass already
    roles = assign_roles(poly, bass, lead)
    assert roles.bass.pitch.tolist() == [40, 43]
    assert roles.lead.pitch.tolist() == [72, 67]
    assert roles.accompaniment.pitch.tolist() == [64]


def test_smoothing_steadies_a_role_without_crossing_far_notes() -> None:
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.8, 0.2], [0.1, 0.9]], np.float32)
    starts = np.array([0, 10, 20, 1000])
    smoothed = smooth_family_probs(probs, starts, 30)
    assert smoothed.argmax(axis=1).tolist() == [0, 0, 0, 1]  # the flicker at 10 follows its neighbours
    assert np.allclose(smoothed[3], probs[3])  # a note far away keeps its own estimate
    assert np.allclose(smoothed.sum(axis=1), 1.0)
