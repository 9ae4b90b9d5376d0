"""The beat grid of a Result: seconds to beats and back, through the tempo map the .mid is written with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from stemscribe.midi import TICKS_PER_BEAT, tempo_knots, to_ticks

if TYPE_CHECKING:
    from stemscribe.result import Result


@dataclass(frozen=True, slots=True)
class BeatMap:
    """Seconds <-> beat positions; beat k of the map is tick k * TICKS_PER_BEAT of the written .mid.

    `times` and `ticks` are the knots of `stemscribe.midi.tempo_knots`; beat 0 is at 0 s, and beats before
    the first tracked beat are spread evenly over the lead-in, as the .mid's tempo map does.
    """

    times: npt.NDArray[np.float64]
    ticks: npt.NDArray[np.float64]

    @classmethod
    def of(cls, result: Result) -> BeatMap:
        times, ticks = tempo_knots(list(result.beats), result.tempo, result.duration)
        return cls(times, ticks)

    def to_beats(self, seconds: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Beat positions of times in seconds (to 1/TICKS_PER_BEAT of a beat)."""
        return to_ticks(seconds, (self.times, self.ticks)).astype(np.float64) / TICKS_PER_BEAT

    def to_seconds(self, beats: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Times in seconds of beat positions, extrapolating past the last knot at the last tempo."""
        k = np.asarray(beats, dtype=np.float64) * TICKS_PER_BEAT
        inside = np.interp(k, self.ticks, self.times)
        slope = (self.times[-1] - self.times[-2]) / (self.ticks[-1] - self.ticks[-2])
        return np.where(k > self.ticks[-1], self.times[-1] + (k - self.ticks[-1]) * slope, inside)

    def n_beats(self, duration: float) -> int:
        """How many whole or partial beats cover [0, duration] (at least 1)."""
        end = float(self.to_beats([max(duration, 0.0)])[0])
        return max(1, int(np.ceil(end - 1e-6)))
