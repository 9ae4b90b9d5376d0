"""Source separation: the `Separator` seam, its registry, and the always-available HPSS backend.

A backend splits audio into named stems. `hpss` (harmonic/percussive median filtering) needs no
weights and gives "drums" + "harmonic"; model backends (Demucs) register here under their own
name and give vocals, drums, bass, other (and guitar, piano).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from stemscribe.audio import Audio
from stemscribe.errors import InvalidOptionError, SeparationUnavailableError
from stemscribe.progress import ProgressCallback, report

if TYPE_CHECKING:
    from scipy.signal import ShortTimeFFT


@runtime_checkable
class Separator(Protocol):
    """Splits audio into named stems whose sum approximates the input."""

    name: str

    def stem_names(self) -> tuple[str, ...]:
        """The stems `separate` returns, in order."""
        ...

    def separate(self, audio: Audio, *, progress: ProgressCallback | None = None) -> dict[str, Audio]:
        """Return one Audio per stem, each at the input's rate and channel layout."""
        ...


def _stft_engine(n_fft: int, hop: int) -> "ShortTimeFFT":
    from scipy.signal import ShortTimeFFT
    from scipy.signal.windows import hann

    return ShortTimeFFT(hann(n_fft, sym=False), hop=hop, fs=1.0, mfft=n_fft)


class HPSSSeparator:
    """Harmonic/percussive separation by median filtering (Fitzgerald 2010) with soft masks."""

    name = "hpss"

    def __init__(self, *, n_fft: int = 2048, hop: int = 512, kernel: int = 17, power: float = 2.0) -> None:
        self.n_fft, self.hop, self.kernel, self.power = n_fft, hop, kernel, power

    def stem_names(self) -> tuple[str, ...]:
        return ("drums", "harmonic")

    def masks(self, magnitude: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Soft (harmonic, percussive) masks, each shaped like `magnitude` (n_bins, n_frames)."""
        from scipy.ndimage import median_filter

        harm = median_filter(magnitude, size=(1, self.kernel), mode="reflect")
        perc = median_filter(magnitude, size=(self.kernel, 1), mode="reflect")
        h, p = harm**self.power, perc**self.power
        total = h + p + 1e-10
        return (h / total).astype(np.float32), (p / total).astype(np.float32)

    def separate(self, audio: Audio, *, progress: ProgressCallback | None = None) -> dict[str, Audio]:
        channels = audio.samples[None, :] if audio.samples.ndim == 1 else audio.samples
        n = channels.shape[-1]
        engine = _stft_engine(self.n_fft, self.hop)
        specs = engine.stft(channels, axis=-1)  # (channels, n_bins, n_frames)
        mono_mag = np.abs(specs.mean(axis=0)).astype(np.float32)
        mask_h, mask_p = self.masks(mono_mag)
        report(progress, "separating", 0.5)
        shape = audio.samples.shape
        h = engine.istft(specs * mask_h, k1=n).real.reshape(shape).astype(np.float32)
        p = engine.istft(specs * mask_p, k1=n).real.reshape(shape).astype(np.float32)
        report(progress, "separating", 1.0)
        return {"drums": Audio(p, audio.sr), "harmonic": Audio(h, audio.sr)}


SeparatorFactory = Callable[..., Separator]
_REGISTRY: dict[str, SeparatorFactory] = {"hpss": HPSSSeparator}


def register_separator(name: str, factory: SeparatorFactory) -> None:
    """Make a backend available to `get_separator(name)`."""
    _REGISTRY[name] = factory


def separator_names() -> list[str]:
    """Names of the registered separation backends."""
    import stemscribe.separation  # noqa: F401 - registers "demucs" and its models; imports no torch
    return sorted(_REGISTRY)


def get_separator(name: str, **options: object) -> Separator:
    """Build the backend called `name`; SeparationUnavailableError when it cannot run here."""
    import stemscribe.separation  # noqa: F401 - registers "demucs" and its models; imports no torch
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise InvalidOptionError(f"unknown separator {name!r}; known: {', '.join(separator_names())}") from None
    return factory(**options)


__all__ = [
    "HPSSSeparator",
    "SeparationUnavailableError",
    "Separator",
    "get_separator",
    "register_separator",
    "separator_names",
]
