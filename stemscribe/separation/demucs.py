"""Demucs (Hybrid Transformer Demucs v4) as a `Separator`, chunked with overlap in bounded memory.

The model runs on one segment (its training length, ~7.8 s for htdemucs) at a time. Segments
overlap by `overlap` and are cross-faded with the triangular weights Demucs' own `apply_model`
uses, so the result equals `apply_model(split=True)`; unlike it, finished samples are handed on as
soon as no later segment touches them, so working memory stays a few segments long however long
the song is (Demucs' users hit out-of-memory on long tracks because its accumulator spans the
whole song, on the GPU when the mix is there). `iter_separate` streams blocks (the CLI writes them
straight to files); `separate` fills one array per stem at the input's rate and channel layout.

This module imports torch; `stemscribe.separation` imports it only when a Demucs separator is
built.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from stemscribe.audio import Audio, resample
from stemscribe.errors import InvalidOptionError, ModelError, SeparationUnavailableError
from stemscribe.progress import ProgressCallback, report
from stemscribe.separation.weights import DEFAULT_MODEL, FileState, fetch_command, get_spec, model_status

try:
    import torch
    from demucs.apply import BagOfModels, TensorChunk, apply_model
    from demucs.htdemucs import HTDemucs
    from demucs.pretrained import get_model
    from demucs.repo import ModelLoadingError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise SeparationUnavailableError(
        f"the demucs separator needs the separation extra (pip install 'stemscribe[separation]'): {exc}"
    ) from exc

logger = logging.getLogger(__name__)


def default_device() -> str:
    """ "cuda" when a CUDA GPU is usable, else "cpu"."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_demucs_model(name: str = DEFAULT_MODEL, *, root: Path | None = None) -> Any:
    """Load model `name` from the data directory with Demucs' own repo code (checksums checked).

    SeparationUnavailableError when the weights were never fetched; ModelError when they are
    damaged or do not load.
    """
    spec = get_spec(name)
    status = model_status(spec, root=root, verify=False)
    if not status.ready:
        missing = [f.file.filename for f in status.files if f.state is not FileState.ok]
        what = ", ".join(missing) if missing else f"{name}.yaml"
        raise SeparationUnavailableError(
            f"demucs model {name!r} is not fetched ({what} missing in {status.directory}); "
            f"run `{fetch_command(name)}`"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = get_model(spec.name, repo=status.directory)
    except ModelLoadingError as exc:
        raise ModelError(f"demucs model {name!r}: {exc}; run `{fetch_command(name)} --force`") from exc
    except Exception as exc:  # noqa: BLE001 - unpickling a damaged checkpoint fails in many ways
        raise ModelError(
            f"demucs model {name!r} in {status.directory} does not load ({type(exc).__name__}: {exc}); "
            f"run `{fetch_command(name)} --force`"
        ) from exc
    if list(model.sources) != list(spec.sources):
        raise ModelError(f"demucs model {name!r} gives stems {model.sources}, expected {list(spec.sources)}")
    model.eval()
    return model


def _max_segment(model: Any) -> Any:
    """The longest segment (seconds, often a Fraction) every network in `model` accepts."""
    nets = list(model.models) if isinstance(model, BagOfModels) else [model]
    limits: list[Any] = [net.segment for net in nets if isinstance(net, HTDemucs) or hasattr(net, "segment")]
    if not limits:
        raise ModelError("the demucs model declares no segment length")
    return min(limits)


def _mono_stats(mix: npt.NDArray[np.float32], block: int = 1 << 18) -> tuple[float, float]:
    """Mean and standard deviation (ddof=1, plus 1e-8) of the channel average, a block at a time."""
    length = mix.shape[-1]
    total = squares = 0.0
    for start in range(0, length, block):
        ref = mix[:, start : start + block].mean(axis=0, dtype=np.float64)
        total += float(ref.sum())
    mean = total / length
    for start in range(0, length, block):
        ref = mix[:, start : start + block].mean(axis=0, dtype=np.float64) - mean
        squares += float(np.dot(ref, ref))
    std = (squares / (length - 1)) ** 0.5 if length > 1 else 0.0
    return mean, std + 1e-8


class _Resampler:
    """Streams (channels, k) blocks from one rate to another, exactly `total` samples in all."""

    def __init__(self, sr_in: int, sr_out: int, channels: int, total: int) -> None:
        self.total, self.emitted, self.channels = total, 0, channels
        self.stream = None
        if sr_in != sr_out:
            import soxr

            self.stream = soxr.ResampleStream(sr_in, sr_out, channels, dtype="float32", quality="HQ")

    def push(self, block: npt.NDArray[np.float32], last: bool) -> npt.NDArray[np.float32]:
        if self.stream is None:
            out = block
        else:
            out = self.stream.resample_chunk(np.ascontiguousarray(block.T), last=last)
            out = np.asarray(out, dtype=np.float32).reshape(-1, self.channels).T
        out = out[:, : self.total - self.emitted]
        if last and self.emitted + out.shape[1] < self.total:
            out = np.pad(out, ((0, 0), (0, self.total - self.emitted - out.shape[1])))
        self.emitted += out.shape[1]
        return out


class DemucsSeparator:
    """A loaded Demucs model: vocals, drums, bass, other (and guitar, piano for htdemucs_6s).

    Options: `model` (a name from `stemscribe models list`), `device` ("cpu", "cuda", ...; default
    the GPU when present), `overlap` between segments (0..0.9), `shifts` (random-shift passes
    averaged, Demucs' trick; 0 keeps the output deterministic), `segment` seconds (at most the
    model's own), `threads` for torch on the CPU (process-wide; one is fastest on a busy machine).
    Loading raises SeparationUnavailableError when the weights are not fetched.
    """

    name = "demucs"

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        root: Path | None = None,
        device: str | None = None,
        overlap: float = 0.25,
        shifts: int = 0,
        segment: float | None = None,
        threads: int | None = None,
    ) -> None:
        if not 0.0 <= overlap <= 0.9:
            raise InvalidOptionError(f"overlap must be between 0 and 0.9, got {overlap}")
        if shifts < 0:
            raise InvalidOptionError(f"shifts must be >= 0, got {shifts}")
        if threads is not None:
            if threads < 1:
                raise InvalidOptionError(f"threads must be >= 1, got {threads}")
            torch.set_num_threads(threads)  # process-wide, as torch has it
        self.model_name = model
        self.device = device or default_device()
        try:
            self.torch_device = torch.device(self.device)
        except RuntimeError as exc:
            raise InvalidOptionError(f"unknown torch device {self.device!r}: {exc}") from None
        self.overlap, self.shifts = overlap, shifts
        self.model = load_demucs_model(model, root=root)
        limit = _max_segment(self.model)
        if segment is not None and not 0 < segment <= limit:
            raise InvalidOptionError(f"segment must be in (0, {float(limit):g}] s for {model}, got {segment}")
        self.segment = segment if segment is not None else limit
        self.samplerate = int(self.model.samplerate)
        self.audio_channels = int(self.model.audio_channels)
        if self.segment_length <= 0:
            raise InvalidOptionError(
                f"segment {float(self.segment):g} s leaves no room for --shifts (0.5 s each side)"
            )
        self.model.to(self.torch_device)
        self._lock = threading.Lock()

    def stem_names(self) -> tuple[str, ...]:
        return tuple(self.model.sources)

    @property
    def segment_length(self) -> int:
        """Samples per chunk: the segment, less the 0.5 s that random shifts add around it."""
        shift_room = int(0.5 * self.samplerate) if self.shifts else 0
        return int(self.samplerate * self.segment) - shift_room

    def _model_input(self, audio: Audio) -> npt.NDArray[np.float32]:
        """(model channels, n) at the model's rate, a private copy."""
        x = audio.samples[None, :] if audio.samples.ndim == 1 else audio.samples
        if x.shape[0] == 1 and self.audio_channels > 1:
            x = np.repeat(x, self.audio_channels, axis=0)
        elif x.shape[0] > self.audio_channels:
            x = x.mean(axis=0, keepdims=True) if self.audio_channels == 1 else x[: self.audio_channels]
        out = resample(np.ascontiguousarray(x, dtype=np.float32), audio.sr, self.samplerate)
        return np.array(out, dtype=np.float32, copy=True) if np.shares_memory(out, audio.samples) else out

    def _segments(
        self, mix: npt.NDArray[np.float32], progress: ProgressCallback | None
    ) -> Iterator[tuple[int, npt.NDArray[np.float32]]]:
        """Yield (start, (n_sources, channels, k)) finished blocks at the model rate, in order.

        `mix` (channels, n) is normalised in place as Demucs' API does; the stems are scaled back,
        with the mix's mean shared among them (Demucs adds it to each) so that a model whose
        stems sum to its input gives stems that sum to the mix.
        """
        channels, length = mix.shape
        mean, std = _mono_stats(mix)
        mix -= mean
        mix /= std
        tensor = torch.from_numpy(mix)[None]
        seg = self.segment_length
        stride = max(1, int((1 - self.overlap) * seg))
        offsets = list(range(0, length, stride))
        ramp = np.concatenate([np.arange(1, seg // 2 + 1), np.arange(seg - seg // 2, 0, -1)]).astype(
            np.float32
        )
        weight = ramp / ramp.max()
        n_sources = len(self.model.sources)
        acc = np.zeros((n_sources, channels, seg), dtype=np.float32)
        wsum = np.zeros(seg, dtype=np.float32)
        for index, offset in enumerate(offsets):
            chunk = TensorChunk(tensor, offset, seg)
            with torch.no_grad():
                out = apply_model(
                    self.model,
                    chunk,
                    shifts=self.shifts,
                    split=False,
                    segment=self.segment,
                    device=self.torch_device,
                )
            block = out[0].to("cpu", torch.float32).numpy()
            n = block.shape[-1]
            acc[..., :n] += weight[:n] * block
            wsum[:n] += weight[:n]
            done = (offsets[index + 1] if index + 1 < len(offsets) else length) - offset
            finished = acc[..., :done] / wsum[:done]
            yield offset, finished * std + mean / n_sources
            acc = np.concatenate([acc[..., done:], np.zeros_like(acc[..., :done])], axis=-1)
            wsum = np.concatenate([wsum[done:], np.zeros_like(wsum[:done])])
            report(progress, "separating", (index + 1) / len(offsets))

    def iter_separate(
        self, audio: Audio, *, progress: ProgressCallback | None = None
    ) -> Iterator[tuple[int, dict[str, npt.NDArray[np.float32]]]]:
        """Yield (start, {stem: block}) in order at `audio`'s rate and layout ((k,) or (channels, k)).

        The blocks tile the input exactly. Mono input gives mono stems; two or more channels give
        the model's channels (stereo).
        """
        mono = audio.samples.ndim == 1
        total = audio.samples.shape[-1]
        out_channels = self.audio_channels
        sources = self.stem_names()
        with self._lock:
            report(progress, "separating", 0.0)
            mix = self._model_input(audio)
            length = mix.shape[-1]
            streams = {
                s: _Resampler(self.samplerate, audio.sr, 1 if mono else out_channels, total) for s in sources
            }
            position = 0
            for offset, block in self._segments(mix, progress):
                last = offset + block.shape[-1] >= length
                pieces: dict[str, npt.NDArray[np.float32]] = {}
                for i, source in enumerate(sources):
                    stem = block[i].mean(axis=0, keepdims=True) if mono else block[i]
                    pieces[source] = streams[source].push(np.ascontiguousarray(stem, dtype=np.float32), last)
                k = pieces[sources[0]].shape[-1]
                if k:
                    yield position, {s: (p[0] if mono else p) for s, p in pieces.items()}
                    position += k

    def separate(self, audio: Audio, *, progress: ProgressCallback | None = None) -> dict[str, Audio]:
        """One Audio per stem at the input's rate and layout; memory: the outputs plus a few segments."""
        n = audio.samples.shape[-1]
        shape = (n,) if audio.samples.ndim == 1 else (self.audio_channels, n)
        outputs = {s: np.zeros(shape, dtype=np.float32) for s in self.stem_names()}
        for start, blocks in self.iter_separate(audio, progress=progress):
            for source, block in blocks.items():
                outputs[source][..., start : start + block.shape[-1]] = block
        return {source: Audio(samples, audio.sr) for source, samples in outputs.items()}
