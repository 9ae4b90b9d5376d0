"""Instrument assignment in mixes: split decoded notes into bass line, lead melody and accompaniment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt

from stemscribe.transcription.notes import NoteArrays, pairs_within

# Two notes match when their pitches agree and their onsets lie within this many frames (~46 ms).
MATCH_FRAMES = 4


@dataclass(frozen=True, slots=True)
class Assignment:
    """Notes of a mix split by role."""

    bass: NoteArrays
    lead: NoteArrays
    accompaniment: NoteArrays


def _matched(line: NoteArrays, notes: NoteArrays) -> npt.NDArray[np.bool_]:
    """(len(notes),) True where a note has a twin in `line` (same pitch, onset within MATCH_FRAMES)."""
    out = np.zeros(len(notes), dtype=bool)
    i, j = pairs_within(notes.start, line.start, MATCH_FRAMES)
    out[i[notes.pitch[i] == line.pitch[j]]] = True
    return out


def assign_roles(poly: NoteArrays, bass_line: NoteArrays, lead_line: NoteArrays) -> Assignment:
    """Split the polyphonic notes by role, using the monophonic lines as guides.

    The lines come from their own decoders (low range for the bass, upper range for the lead); a
    polyphonic note that has a twin in the bass line is bass, else one with a twin in the lead
    line is lead, and the rest is accompaniment. Line notes without a polyphonic twin are dropped:
    the polyphonic decoder decides which notes exist, the lines only who plays them.
    """
    in_bass = _matched(bass_line, poly)
    in_lead = _matched(lead_line, poly) & ~in_bass
    return Assignment(poly.select(in_bass), poly.select(in_lead), poly.select(~in_bass & ~in_lead))


def smooth_family_probs(
    probs: npt.NDArray[np.float32],
    starts: npt.NDArray[np.int64],
    window: int,
    pitches: npt.NDArray[np.int64] | None = None,
    pitch_window: int = 0,
) -> npt.NDArray[np.float32]:
    """(n, n_families) each note's family probabilities averaged with its role's neighbours.

    Notes of one role within `window` frames of each other are usually one player: averaging their
    per-note estimates steadies the label without flattening a change of instrument. With `pitches`,
    only notes within `pitch_window` semitones count as neighbours (in a whole mix, the notes near
    a note in time and register are the ones its player plays).
    """
    if window <= 0 or starts.size == 0:
        return probs
    i, j = pairs_within(starts, starts, window)
    if pitches is not None:
        near = np.abs(pitches[i] - pitches[j]) <= pitch_window
        i, j = i[near], j[near]
    total = np.zeros_like(probs)
    np.add.at(total, i, probs[j])
    counts = np.bincount(i, minlength=starts.size)[:, None].astype(np.float32)
    return cast(npt.NDArray[np.float32], total / counts)
