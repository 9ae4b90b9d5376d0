"""Write a separation's stems as audio files, streamed block by block when the backend can."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from stemscribe.audio import Audio
from stemscribe.errors import InvalidOptionError
from stemscribe.progress import ProgressCallback
from stemscribe.separation.base import Separator
from stemscribe.separation.stemsets import StemSet, select_stems, vocals_instrumental

FORMATS = ("wav", "flac")


def _frames(block: npt.NDArray[np.float32], float_out: bool) -> npt.NDArray[np.float32]:
    """(k,) or (channels, k) -> (k, channels) for soundfile, clipped to -1..1 when written as PCM."""
    frames = block[:, None] if block.ndim == 1 else block.T
    return frames if float_out else np.clip(frames, -1.0, 1.0)


class _Writers:
    """One soundfile per stem, written to `<name>.part` files renamed only once all are complete."""

    def __init__(self, directory: Path, sr: int, fmt: str, float_out: bool) -> None:
        self.directory, self.sr, self.fmt, self.float_out = directory, sr, fmt, float_out
        self.files: dict[str, Any] = {}
        self.parts: dict[str, Path] = {}

    def write(self, name: str, block: npt.NDArray[np.float32]) -> None:
        import soundfile as sf

        if name not in self.files:
            part = self.directory / f".{name}.{self.fmt}.part"
            channels = 1 if block.ndim == 1 else block.shape[0]
            subtype = "FLOAT" if self.float_out else "PCM_16"
            self.files[name] = sf.SoundFile(
                part, "w", samplerate=self.sr, channels=channels, format=self.fmt.upper(), subtype=subtype
            )
            self.parts[name] = part
        self.files[name].write(_frames(block, self.float_out))

    def commit(self) -> dict[str, Path]:
        for f in self.files.values():
            f.close()
        done = {}
        for name, part in self.parts.items():
            target = self.directory / f"{name}.{self.fmt}"
            os.replace(part, target)
            done[name] = target
        return done

    def abort(self) -> None:
        for f in self.files.values():
            f.close()
        for part in self.parts.values():
            part.unlink(missing_ok=True)


def write_stems(
    separator: Separator,
    audio: Audio,
    directory: Path,
    *,
    stem_set: StemSet | str = StemSet.all_stems,
    fmt: str = "wav",
    float_out: bool = False,
    progress: ProgressCallback | None = None,
) -> dict[str, Path]:
    """Separate `audio` and write `<directory>/<stem>.<fmt>` for each stem of `stem_set`.

    A backend with `iter_separate` (Demucs) is streamed to the files, so memory stays a few
    segments long; others (hpss) are separated whole first. Files are written under temporary
    names and renamed when every stem is complete: a failure leaves no partial stems. WAV/FLAC,
    16-bit PCM (clipped) or, with `float_out`, 32-bit float WAV.
    """
    kind = StemSet.parse(stem_set)
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise InvalidOptionError(f"format must be wav or flac, got {fmt!r}")
    if float_out and fmt != "wav":
        raise InvalidOptionError("32-bit float output needs the wav format")
    if kind is StemSet.stems and "vocals" not in separator.stem_names():
        raise InvalidOptionError(
            f"{separator.name} gives {', '.join(separator.stem_names())}, no vocals; "
            "use a demucs model for vocals + instrumental, or all_stems"
        )
    directory.mkdir(parents=True, exist_ok=True)
    writers = _Writers(directory, audio.sr, fmt, float_out)
    try:
        stream = getattr(separator, "iter_separate", None)
        if stream is not None:
            for start, blocks in stream(audio, progress=progress):
                if kind is StemSet.stems:
                    k = blocks["vocals"].shape[-1]
                    blocks = vocals_instrumental(blocks["vocals"], audio.samples[..., start : start + k])
                for name, block in blocks.items():
                    writers.write(name, block)
        else:
            parts = select_stems(separator.separate(audio, progress=progress), audio, kind)
            for name, part in parts.items():
                writers.write(name, part.samples)
    except BaseException:
        writers.abort()
        raise
    return writers.commit()
