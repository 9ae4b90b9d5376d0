"""Speed and memory, side by side with basic-pitch: warm in-process real-time factor on a 3-minute mix,
a cold `stemscribe transcribe` of that song as a user runs it, and peak memory on a 10-minute song.

The songs are the benchmark's 30-second mixes (FluidSynth renders, see bench/build.py) joined end to
end, so they are real multi-instrument music. The warm runs alternate between the two systems
(`--repeats` rounds; best and median), so that other load falls on both alike; the cold and memory
rows are single runs. Run on an idle machine: other load changes every figure.

    python -m bench.speed [--data bench/data] [--out bench/out]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from bench.build import DATA_DIR
from bench.run import OUT_DIR

SR = 44100


def build_song(data: Path, seconds: float, path: Path) -> Path:
    """Join the benchmark's mixes (looping them) into one stereo 44.1 kHz FLAC of `seconds`."""
    from stemscribe.audio import load_audio

    mixes = sorted(data.glob("*/mix.flac"))
    if not mixes:
        raise SystemExit(f"no mixes under {data}: run `python -m bench.build` first")
    parts = [load_audio(p, sr=SR, mono=False).samples for p in mixes]
    parts = [p if p.ndim == 2 else np.stack([p, p]) for p in parts]
    need, chunks, i = int(seconds * SR), [], 0
    while sum(c.shape[1] for c in chunks) < need:
        chunks.append(parts[i % len(parts)])
        i += 1
    song = np.concatenate(chunks, axis=1)[:, :need]
    sf.write(path, song.T, SR)
    return path


def _child(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MB) of one child process run to completion."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return wall, usage.ru_maxrss / 1024.0


PEER_SCRIPT = (
    "import logging, sys; logging.disable(logging.WARNING);"
    "from basic_pitch.inference import predict; predict(sys.argv[1])[1].write(sys.argv[2])"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.speed", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--engine", default="auto", help="stemscribe's engine (auto, network, basic-pitch)")
    parser.add_argument(
        "--repeats", type=int, default=5, help="warm runs of each system, alternating (min and median)"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    from bench.systems import BasicPitch
    from stemscribe.stems import StemType
    from stemscribe.transcription.pipeline import Transcriber

    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        song3 = build_song(args.data, 180.0, Path(tmp) / "song3.flac")
        song10 = build_song(args.data, 600.0, Path(tmp) / "song10.flac")
        warmup = sorted(args.data.glob("*/mix.flac"))[0]

        # The child processes first, while this one is small: a child's peak resident memory
        # (ru_maxrss) counts from the size of the process it was forked from.
        cli = [
            sys.executable,
            "-m",
            "stemscribe",
            "transcribe",
            "--quiet",
            "--engine",
            args.engine,
            "-o",
            tmp,
        ]
        cold_ours, _ = _child([*cli, str(song3)])
        cold_theirs, _ = _child([sys.executable, "-c", PEER_SCRIPT, str(song3), str(Path(tmp) / "bp3.mid")])
        _, mem_ours = _child([*cli, str(song10)])
        _, mem_theirs = _child([sys.executable, "-c", PEER_SCRIPT, str(song10), str(Path(tmp) / "bp10.mid")])

        transcriber = Transcriber(engine=args.engine)
        transcriber.transcribe(warmup, stem="mix")
        peer = BasicPitch()
        peer.transcribe(warmup, "mix")
        # Paired: the two systems alternate, so load from other processes falls on both alike.
        warm: dict[str, list[float]] = {"stemscribe": [], "basic-pitch": []}
        for _ in range(args.repeats):
            t = time.perf_counter()
            result = transcriber.transcribe(song3, stem="mix")
            warm["stemscribe"].append(time.perf_counter() - t)
            t = time.perf_counter()
            peer.transcribe(song3, "mix")
            warm["basic-pitch"].append(time.perf_counter() - t)
        best = {k: min(v) for k, v in warm.items()}
        median = {k: float(np.median(v)) for k, v in warm.items()}
        rows["warm, 3-min mix, median (x real time)"] = {k: 180.0 / v for k, v in median.items()}
        rows["warm, 3-min mix, best (x real time)"] = {k: 180.0 / v for k, v in best.items()}
        rows["warm, 3-min mix, median (s)"] = median
        rows["cold CLI, 3-min song (s)"] = {"stemscribe": cold_ours, "basic-pitch": cold_theirs}
        rows["peak memory, 10-min song (MB)"] = {"stemscribe": mem_ours, "basic-pitch": mem_theirs}

    meta = {
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "drums": transcriber.drum_model.name,
        "engine": args.engine,
        "network_for_mixes": transcriber.uses_network(StemType.MIX),
        "instruments_in_3min_result": [i.name for i in result.instruments],
        "warm_3min_seconds": warm,
    }
    width = max(len(k) for k in rows)
    lines = [f"{'':<{width}}  {'stemscribe':>12}  {'basic-pitch':>12}"]
    for name, vals in rows.items():
        lines.append(f"{name:<{width}}  {vals['stemscribe']:>12.1f}  {vals['basic-pitch']:>12.1f}")
    print("\n".join(lines))
    print(
        f"({meta['cpus']} CPUs, load average {meta['load_average'][0]:.1f}; drum backend {meta['drums']}; "
        f"engine {args.engine}, network for mixes: {meta['network_for_mixes']})"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speed.json").write_text(json.dumps({"rows": rows, "meta": meta}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
