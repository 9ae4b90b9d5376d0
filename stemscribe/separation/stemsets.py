"""Suno's stem sets: `stems` (vocals + instrumental) and `all_stems` (every stem the model gives)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from stemscribe.audio import Audio
from stemscribe.errors import InvalidOptionError


class StemSet(StrEnum):
    """Which stems a separation hands back (AceData's `stems`/`all_stems` actions)."""

    stems = "stems"
    all_stems = "all_stems"

    @classmethod
    def parse(cls, value: str | StemSet) -> StemSet:
        try:
            return cls(value)
        except ValueError:
            raise InvalidOptionError(f"unknown stem set {value!r}; use 'stems' or 'all_stems'") from None


STEM_TITLES: dict[str, str] = {
    "vocals": "Vocals",
    "instrumental": "Instrumental",
    "drums": "Drums",
    "bass": "Bass",
    "guitar": "Guitar",
    "piano": "Keyboard",
    "other": "Other",
    "harmonic": "Harmonic",
}
"""Display names of stems, for titles such as "<song> - Vocals" (piano is Suno's "Keyboard")."""


def vocals_instrumental(
    vocals: npt.NDArray[np.float32], mix: npt.NDArray[np.float32]
) -> dict[str, npt.NDArray[np.float32]]:
    """{"vocals", "instrumental"} where instrumental is the mix less the vocals, so the two sum to the mix.

    `vocals` and `mix` are blocks of the same shape ((k,) or (channels, k)); a stereo `vocals`
    against a mix with more channels uses the mix's first channels.
    """
    if mix.ndim == 2 and vocals.ndim == 2 and mix.shape[0] != vocals.shape[0]:
        mix = mix[: vocals.shape[0]]
    if mix.shape != vocals.shape:
        raise InvalidOptionError(f"vocals {vocals.shape} and mix {mix.shape} differ in shape")
    return {"vocals": vocals, "instrumental": (mix - vocals).astype(np.float32, copy=False)}


def select_stems(stems: Mapping[str, Audio], mix: Audio, stem_set: StemSet | str) -> dict[str, Audio]:
    """The stems of `stem_set`: `all_stems` as given; `stems` as vocals + (mix - vocals).

    InvalidOptionError when `stems` is asked of a separator without a vocals stem (hpss).
    """
    kind = StemSet.parse(stem_set)
    if kind is StemSet.all_stems:
        return dict(stems)
    if "vocals" not in stems:
        raise InvalidOptionError(
            f"--stems stems needs a vocals stem; this separator gives {', '.join(stems)} "
            "(use a demucs model, or --stems all_stems)"
        )
    vocals = stems["vocals"]
    if vocals.sr != mix.sr:
        raise InvalidOptionError(f"vocals at {vocals.sr} Hz and mix at {mix.sr} Hz")
    pair = vocals_instrumental(vocals.samples, mix.samples)
    return {name: Audio(samples, mix.sr) for name, samples in pair.items()}
