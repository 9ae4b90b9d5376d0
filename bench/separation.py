"""Separation figures on this machine, without the real weights (which cannot be downloaded here).

    .venv/bin/python -m bench.separation speed [--seconds 20] [--bottom 0|512] [--threads N]
    .venv/bin/python -m bench.separation memory [--minutes 20]

`speed`: a full-size HTDemucs (htdemucs' architecture at Demucs' default hyper-parameters,
random weights; the published checkpoint's exact configuration may differ a little, so treat
the figure as an estimate) separating stereo 44.1 kHz noise through `DemucsSeparator`.
`memory`: peak resident memory of a long song through Demucs' `apply_model(split=True)`, through
`DemucsSeparator.separate` (which returns every stem in memory, as the `Separator` seam asks) and
through `iter_separate` (streamed blocks, what `stemscribe separate` writes to files), all with a
trivial network so only the chunking machinery is measured. Each measurement runs in its own process.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

SOURCES = ["drums", "bass", "other", "vocals"]


def _install_full_size(root: Path, bottom: int) -> str:
    import torch
    from demucs.htdemucs import HTDemucs
    from demucs.states import get_state

    from stemscribe.separation import weights

    torch.manual_seed(0)
    model = HTDemucs(SOURCES, segment=Fraction(39, 5), bottom_channels=bottom)
    args, kwargs = model._init_args_kwargs
    buf = io.BytesIO()
    torch.save(
        {"klass": HTDemucs, "args": args, "kwargs": kwargs, "state": get_state(model, None, half=True)}, buf
    )
    data = buf.getvalue()
    prefix = hashlib.sha256(data).hexdigest()[:8]
    spec = weights.ModelSpec(
        "bench", tuple(SOURCES), (weights.WeightFile("bench000", prefix, "file://bench"),), "benchmark"
    )
    weights.MODELS["bench"] = spec
    weights._install_stream(spec.files[0], weights.models_dir("demucs", root), [data], source="memory")
    weights._write_bag(spec, weights.models_dir("demucs", root))
    return f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters"


def speed(seconds: float, bottom: int, threads: int | None) -> None:
    import numpy as np
    import torch

    if threads:
        torch.set_num_threads(threads)

    from stemscribe.audio import Audio
    from stemscribe.separation.demucs import DemucsSeparator

    root = Path(tempfile.mkdtemp())
    size = _install_full_size(root, bottom)
    separator = DemucsSeparator(model="bench", root=root, device="cpu")
    audio = Audio(
        (np.random.default_rng(0).standard_normal((2, int(seconds * 44100))) * 0.1).astype(np.float32), 44100
    )
    start = time.perf_counter()
    separator.separate(audio)
    took = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"speed: {size}, {seconds:.0f} s stereo 44.1 kHz on {torch.get_num_threads()} CPU threads: "
        f"{took:.1f} s ({took / seconds:.2f} s per audio second), peak RSS {peak:.0f} MB"
    )


def _memory_child(mode: str, minutes: float) -> None:
    import numpy as np
    import torch
    from demucs.apply import apply_model

    from stemscribe.audio import Audio
    from stemscribe.separation.demucs import DemucsSeparator

    class Share(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.sources, self.samplerate, self.audio_channels, self.segment = (
                SOURCES,
                44100,
                2,
                Fraction(39, 5),
            )

        def forward(self, mix: torch.Tensor) -> torch.Tensor:
            return mix[:, None].repeat(1, 4, 1, 1) * 0.25

    n = int(minutes * 60 * 44100)
    mix = np.random.default_rng(0).standard_normal((2, n), dtype=np.float32)
    mix *= 0.1
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    if mode == "demucs":
        with torch.no_grad():
            out = apply_model(Share(), torch.from_numpy(mix)[None], shifts=0, split=True, overlap=0.25)
        assert out.shape[-1] == n
    else:
        separator = DemucsSeparator.__new__(DemucsSeparator)
        separator.model, separator.samplerate, separator.audio_channels = Share(), 44100, 2
        separator.segment, separator.overlap, separator.shifts = Fraction(39, 5), 0.25, 0
        separator.torch_device = torch.device("cpu")
        import threading

        separator._lock = threading.Lock()
        if mode == "separate":
            stems = separator.separate(Audio(mix, 44100))
            assert stems["vocals"].samples.shape[-1] == n
        else:
            covered = 0
            for _, blocks in separator.iter_separate(Audio(mix, 44100)):
                covered += blocks["vocals"].shape[-1]
            assert covered == n
    took = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{mode:>10}: +{peak - base:6.0f} MB over the {mix.nbytes / 1e6:.0f} MB input, {took:.1f} s")


def memory(minutes: float) -> None:
    print(f"memory: a {minutes:g}-minute stereo 44.1 kHz song, 4 stems, trivial network")
    for mode in ("demucs", "separate", "streamed"):
        subprocess.run([sys.executable, __file__, "_memory", mode, str(minutes)], check=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["speed", "memory", "_memory"])
    parser.add_argument("mode", nargs="?")
    parser.add_argument("value", nargs="?", type=float)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--bottom", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    options = parser.parse_args()
    if options.what == "speed":
        speed(options.seconds, options.bottom, options.threads)
    elif options.what == "memory":
        memory(options.minutes)
    else:
        _memory_child(options.mode, options.value)
