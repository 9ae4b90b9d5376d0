"""The always-available separation backend: harmonic/percussive split, no weights.

`hpss` gives "drums" + "harmonic"; the model backends (`separation.demucs`) give vocals, drums,
bass, other (and guitar, piano).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from stemscribe.audio import Audio
from stemscribe.progress import ProgressCallback, report


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
        from scipy.ndimage import grey_opening

        harm = grey_opening(magnitude, size=(1, self.time_frames), mode="nearest")
        perc = grey_opening(magnitude, size=(self.freq_bins, 1), mode="nearest")
        h, p = harm**self.power, perc**self.power
        total = h + p + 1e-10
        return (h / total).astype(np.float32), (p / total).astype(np.float32)

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
        mono_mag = np.abs(sum(specs) / len(specs)).astype(np.float32)
        mask_h, _ = self.masks(mono_mag)
        return np.stack([istft(spec * mask_h, self.n_fft, self.hop, n) for spec in specs])
