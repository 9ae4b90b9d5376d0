"""The always-available separation backend: harmonic/percussive split, no weights.

`hpss` gives "drums" + "harmonic"; the model backends (`separation.demucs`) give vocals, drums,
bass, other (and guitar, piano).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from stemscribe.audio import Audio
from stemscribe.progress import ProgressCallback, report


def _running(
    op: Callable[..., npt.NDArray[np.float32]], x: npt.NDArray[np.float32], size: int, axis: int
) -> npt.NDArray[np.float32]:
    """`op` (np.minimum or np.maximum) of each value's `size` (odd) neighbours along `axis`, centred,
    the edge values repeated beyond the ends: scipy.ndimage's min/max filter in mode "nearest", the
    same values (min and max are exact) from a few whole-array operations (windows 1, 2, 4, 8 ...)."""
    half, n = size // 2, x.shape[axis]
    pad = [(0, 0)] * x.ndim
    pad[axis] = (half, half)
    cur = np.moveaxis(np.pad(x, pad, mode="edge"), axis, 0)  # a view: `axis` first
    span = 1  # cur[i] is op over the padded values i .. i + span - 1
    while 2 * span <= size:
        cur = op(cur[: len(cur) - span], cur[span:])
        span *= 2
    return np.moveaxis(op(cur[:n], cur[size - span : size - span + n]), 0, axis)


def grey_opening(x: npt.NDArray[np.float32], size: int, axis: int) -> npt.NDArray[np.float32]:
    """`scipy.ndimage.grey_opening(x, size)` along one axis (`size` odd, mode "nearest"), exactly,
    twice as fast: a running minimum, then a running maximum of it."""
    if size % 2 != 1:
        raise ValueError(f"the opening's size must be odd, got {size}")
    return _running(np.maximum, _running(np.minimum, x, size, axis), size, axis)


class HPSSSeparator:
    """Harmonic/percussive separation with soft masks (Fitzgerald 2010).

    Sustained partials are found by a grey opening along time (it erases anything shorter than
    `time_frames`), broadband hits by a grey opening along frequency (it erases anything narrower
    than `freq_bins`): min/max filters in O(n), where median filters cost seconds per song.
    """

    name = "hpss"

    def __init__(
        self,
        *,
        n_fft: int = 2048,
        hop: int = 512,
        time_frames: int = 9,
        freq_bins: int = 9,
        power: float = 2.0,
    ) -> None:
        self.n_fft, self.hop, self.time_frames, self.freq_bins, self.power = (
            n_fft,
            hop,
            time_frames,
            freq_bins,
            power,
        )

    def stem_names(self) -> tuple[str, ...]:
        return ("drums", "harmonic")

    def masks(
        self, magnitude: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Soft (harmonic, percussive) masks, each shaped like `magnitude` (n_bins, n_frames)."""
        h, p = self._powers(magnitude)
        total = h + p + 1e-10
        return (h / total).astype(np.float32), (p / total).astype(np.float32)

    def harmonic_mask(self, magnitude: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The first of `masks`, without making the second."""
        h, p = self._powers(magnitude)
        return (h / (h + p + 1e-10)).astype(np.float32)

    def _powers(
        self, magnitude: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        harm = grey_opening(magnitude, self.time_frames, axis=1)
        perc = grey_opening(magnitude, self.freq_bins, axis=0)
        return harm**self.power, perc**self.power

    def separate(self, audio: Audio, *, progress: ProgressCallback | None = None) -> dict[str, Audio]:
        from stemscribe.audio import blocks

        channels = audio.samples[None, :] if audio.samples.ndim == 1 else audio.samples
        n = channels.shape[-1]
        harmonic = np.zeros_like(channels, dtype=np.float32)
        # Blocks of ~30 s keep memory flat on long songs; the margin covers the STFT and the opening,
        # so each block's core is what a whole-file pass would give.
        margin = self.n_fft + self.hop * (self.time_frames + 2)
        parts = blocks(n, block=self.hop * 1300, margin=margin)
        for i, (r0, r1, c0, c1) in enumerate(parts):
            block = self._harmonic(channels[:, r0:r1])
            harmonic[:, c0:c1] = block[:, c0 - r0 : c1 - r0]
            report(progress, "separating", (i + 1) / len(parts))
        percussive = channels - harmonic  # the masks sum to one, so the stems sum back to the input
        shape = audio.samples.shape
        return {
            "drums": Audio(percussive.reshape(shape).astype(np.float32), audio.sr),
            "harmonic": Audio(harmonic.reshape(shape), audio.sr),
        }

    def _harmonic(self, channels: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """(channels, n) harmonic part of (channels, n) audio."""
        from stemscribe.audio import istft, stft

        n = channels.shape[-1]
        specs = [stft(ch, self.n_fft, self.hop) for ch in channels]
        # one channel: its own magnitude (the same values as the mean's, without two copies)
        mono_mag = np.abs(specs[0] if len(specs) == 1 else sum(specs) / len(specs)).astype(np.float32)
        mask_h = self.harmonic_mask(mono_mag)
        return np.stack([istft(spec * mask_h, self.n_fft, self.hop, n) for spec in specs])
