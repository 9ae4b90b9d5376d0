"""Run basic-pitch's ICASSP 2022 network with onnxruntime.

The network sees 2-second windows of 22.05 kHz mono audio and outputs, per 11.6 ms frame, note
(frame) and onset posteriors for 88 pitches (A0..C8) and a 3-bins-per-semitone contour. The graph
run is `stemscribe/weights/pitch.onnx`: the `nmp.onnx` that basic-pitch 0.4.0's wheel ships
(Copyright 2022 Spotify AB, Apache-2.0), with two convolutions rewritten into a layout the CPU runs
~30 % faster and the same posteriors to ~1e-6 (`python -m training.pitch_graph` makes it from the
wheel's file; see that module).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from stemscribe.errors import ModelError
from stemscribe.transcription.weights import check_sha256, shipped_weights, sidecar

SAMPLE_RATE = 22050
FFT_HOP = 256
WINDOW_SAMPLES = SAMPLE_RATE * 2 - FFT_HOP  # 43844
WINDOW_FRAMES = 172
OVERLAP_FRAMES = 30
OVERLAP_SAMPLES = OVERLAP_FRAMES * FFT_HOP
HOP_SAMPLES = WINDOW_SAMPLES - OVERLAP_SAMPLES
MIDI_OFFSET = 21  # pitch index 0 is A0 = MIDI 21
N_PITCHES = 88
# nmp.onnx in basic-pitch 0.4.0's wheel, the source of the shipped graph
WHEEL_SHA256 = "2c3c1d144bfa61ad236e92e169c13535c880469a12a047d4e73451f2c059a0ec"
SHIPPED = "pitch.onnx"
# basic-pitch's own mapping of the exported graph's outputs: note, onset, contour.
OUTPUTS = ("StatefulPartitionedCall:1", "StatefulPartitionedCall:2", "StatefulPartitionedCall:0")


@dataclass(frozen=True, slots=True)
class Posteriors:
    """Network outputs over a whole file: `note` and `onset` (n_frames, 88), `contour` (n_frames, 264)."""

    note: npt.NDArray[np.float32]
    onset: npt.NDArray[np.float32]
    contour: npt.NDArray[np.float32]

    @property
    def n_frames(self) -> int:
        return int(self.note.shape[0])


FRAMES_PER_WINDOW = WINDOW_FRAMES - OVERLAP_FRAMES  # 142 frames kept from each window


def frame_samples(frames: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Sample positions (at 22050 Hz) of output frames.

    Each window keeps 142 frames (256 samples apart) but windows advance by 36164 samples, not
    142 * 256 = 36352: a uniform frame rate would drift by 8.5 ms per window (0.15 s after 30 s).
    """
    f = np.asarray(frames, dtype=np.int64)
    return ((f // FRAMES_PER_WINDOW) * HOP_SAMPLES + (f % FRAMES_PER_WINDOW) * FFT_HOP).astype(np.float64)


def frame_times(frames: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Times in seconds of output frames (see `frame_samples`)."""
    return frame_samples(frames) / SAMPLE_RATE


def n_output_frames(n_samples: int) -> int:
    """How many output frames start inside audio of `n_samples` samples."""
    windows, rest = divmod(n_samples, HOP_SAMPLES)
    return int(windows * FRAMES_PER_WINDOW + min(FRAMES_PER_WINDOW, -(-rest // FFT_HOP)))


def default_model_path() -> Path:
    """The graph `PitchModel` runs: `STEMSCRIBE_BASIC_PITCH_MODEL` if set, else the shipped pitch.onnx."""
    override = os.environ.get("STEMSCRIBE_BASIC_PITCH_MODEL")
    return Path(override) if override else shipped_weights(SHIPPED)


def wheel_model_path() -> Path:
    """The nmp.onnx file inside the installed basic-pitch wheel (found without importing basic_pitch)."""
    # find_spec locates the package without running its __init__, which probes every ML runtime.
    spec = importlib.util.find_spec("basic_pitch")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "basic-pitch is not installed; install it with `pip install --no-deps basic-pitch==0.4.0` "
            "(its wheel carries the ONNX model that stemscribe's pitch graph is made from)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "saved_models" / "icassp_2022" / "nmp.onnx"
    if not path.is_file() or file_sha256(path) != WHEEL_SHA256:
        raise ModelError(f"{path} is missing or is not basic-pitch 0.4.0's nmp.onnx (sha256 check)")
    return path


def _check_default(path: Path) -> None:
    """The shipped graph must match its sidecar; an override must be the shipped graph or the wheel's."""
    shipped = shipped_weights(SHIPPED)
    if path == shipped:
        check_sha256(path, "pitch model")
        return
    try:
        known = {WHEEL_SHA256, sidecar(shipped).read_text().split()[0].strip().lower()}
    except (OSError, IndexError):
        known = {WHEEL_SHA256}
    if file_sha256(path) not in known:
        raise ModelError(
            f"pitch model at {path} fails its sha256 check (expected stemscribe's pitch.onnx or "
            "basic-pitch 0.4.0's nmp.onnx)"
        )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


MAX_WORKERS = 4


class PitchModel:
    """basic-pitch's network loaded once in an onnxruntime session; `run` is safe to call from threads.

    `threads` is how many batches of windows `run` runs at once (None: the machine's cores, at most
    4), each in one onnxruntime thread: the windows are independent, so this scales where splitting
    each convolution over threads does not (~15 % less CPU on 2 cores), and the posteriors do not
    depend on it (onnxruntime's multi-threaded convolutions round differently, by ~1e-7).
    """

    def __init__(self, model_path: str | Path | None = None, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        path = Path(model_path) if model_path is not None else default_model_path()
        if not path.is_file():
            raise ModelError(f"pitch model not found at {path}")
        if model_path is None:
            _check_default(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = [
            p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()
        ]
        try:
            self._session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
            raise ModelError(f"cannot load pitch model {path}: {exc}") from exc
        self._input = self._session.get_inputs()[0].name
        names = {o.name for o in self._session.get_outputs()}
        self._outputs = list(OUTPUTS)
        if not set(self._outputs) <= names:
            raise ModelError(f"{path} does not look like basic-pitch's model (outputs {sorted(names)})")
        self.path = path
        on_cpu = self._session.get_providers()[0] == "CPUExecutionProvider"
        self.workers = (threads or min(MAX_WORKERS, os.cpu_count() or 1)) if on_cpu else 1
        self._lock = threading.Lock()

    def run(self, samples: npt.NDArray[np.float32], *, batch: int = 4, contour: bool = True) -> Posteriors:
        """Posteriors of (n,) mono audio at 22050 Hz, windows overlapping by 30 frames as in basic-pitch.

        `contour=False` drops the 264-bin contour as it arrives (zeros of width 0 instead), which
        more than halves the memory of a long song's posteriors; pitch bends need it.
        """
        n = samples.shape[0]
        padded = np.concatenate([np.zeros(OVERLAP_SAMPLES // 2, np.float32), samples.astype(np.float32)])
        starts = np.arange(0, padded.shape[0], HOP_SAMPLES)
        need = starts[-1] + WINDOW_SAMPLES
        padded = np.pad(padded, (0, max(0, need - padded.shape[0])))
        windows = np.lib.stride_tricks.sliding_window_view(padded, WINDOW_SAMPLES)[starts][:, :, None]

        def run_batch(b: int) -> list[npt.NDArray[np.float32]]:
            note, onset, cont = self._session.run(self._outputs, {self._input: windows[b : b + batch]})
            # not a view of `cont`: that would keep the whole contour alive
            return [note, onset, cont if contour else np.zeros((*cont.shape[:2], 0), np.float32)]

        firsts = range(0, windows.shape[0], batch)
        if self.workers == 1 or len(firsts) == 1:
            outs = [run_batch(b) for b in firsts]
        else:
            with ThreadPoolExecutor(min(self.workers, len(firsts)), thread_name_prefix="pitch") as pool:
                outs = list(pool.map(run_batch, firsts))
        notes, onsets, contours = ([o[k] for o in outs] for k in range(3))
        half = OVERLAP_FRAMES // 2
        n_frames = n_output_frames(n)

        def unwrap(parts: list[npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]:
            out = np.concatenate(parts)[:, half:-half, :]
            return np.ascontiguousarray(out.reshape(out.shape[0] * out.shape[1], out.shape[2])[:n_frames])

        return Posteriors(unwrap(notes), unwrap(onsets), unwrap(contours))
