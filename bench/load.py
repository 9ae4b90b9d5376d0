"""Load test of the service on loopback: task polls and task submissions, driven by wrk.

Starts its own `stemscribe serve` on 127.0.0.1 with a temporary data directory, creates a key,
uploads a 3-second clip, and then:
  1. polls  GET /v1/transcriptions/{id} of a finished task (result included) with wrk;
  2. submits POST /v1/transcriptions {"audio_id"} with wrk, on a server started with no workers,
     so the figure is the API's (queueing), not the model's.
Each wrk run lasts --duration seconds; the script stops the server and exits by itself.

    .venv/bin/python -m bench.load [--duration 10] [--connections 16] [--threads 1]

Needs `wrk` (apt-get install wrk). The rate limit is disabled for the run (one key makes every request).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
STEMSCRIBE = str(Path(sys.executable).parent / "stemscribe")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _clip() -> bytes:
    sr = 22050
    t = np.arange(sr) / sr
    y = np.concatenate([0.3 * np.sin(2 * np.pi * f * t) for f in (261.63, 329.63, 392.0)]).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="WAV")
    return buf.getvalue()


class Server:
    """`stemscribe serve` in a child process on loopback."""

    def __init__(self, data_dir: Path, workers: int) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "STEMSCRIBE_DATA_DIR": str(data_dir),
            "STEMSCRIBE_RATE_LIMIT_PER_S": "0",
            "STEMSCRIBE_WORKERS": str(workers),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> str:
        out = subprocess.run([STEMSCRIBE, *args], env=self.env, check=True, capture_output=True, cwd=ROOT)
        return out.stdout.decode().strip()

    def __enter__(self) -> Server:
        self.proc = subprocess.Popen(
            [STEMSCRIBE, "serve", "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
            env=self.env,
            cwd=ROOT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("the server did not start within 60 s")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not m:
        raise ValueError(f"cannot read wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(
    url: str,
    *,
    key: str,
    duration: int,
    connections: int,
    threads: int,
    script: str | None = None,
    pid: int | None = None,
) -> dict:
    """Run wrk once: req/s, latency percentiles (ms), non-2xx count, the server's CPU per request."""
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "-H",
        f"Authorization: Bearer {key}",
    ]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        if script:
            lua.write(script)
    if script:
        cmd += ["-s", lua.name]
    cpu_before = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run([*cmd, url], check=True, capture_output=True, text=True).stdout
    cpu_used = cpu_seconds(pid) - cpu_before if pid else 0.0
    os.unlink(lua.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    pct = {p: _ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M)}
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "requests_per_s": rps,
        "p50_ms": pct.get("50"),
        "p90_ms": pct.get("90"),
        "p99_ms": pct.get("99"),
        "requests": total,
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1) if errors else None,
        "server_cpu_ms_per_request": round(1000 * cpu_used / total, 3) if pid and total else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1: the CPU is shared)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("bench.load needs wrk: apt-get install wrk", file=sys.stderr)
        return 2
    figures: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="stemscribe-bench-") as tmp:
        data = Path(tmp)
        # Phase 1: one worker finishes a task, then wrk polls it.
        with Server(data, workers=1) as server:
            key = server.cli("keys", "create", "--name", "bench").splitlines()[0]
            h = {"authorization": f"Bearer {key}"}
            up = httpx.post(
                server.url + "/v1/uploads", files={"file": ("c.wav", _clip(), "audio/wav")}, headers=h
            ).json()
            task = httpx.post(
                server.url + "/v1/transcriptions", json={"audio_id": up["id"]}, headers=h
            ).json()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                state = httpx.get(f"{server.url}/v1/transcriptions/{task['id']}", headers=h).json()["state"]
                if state in ("succeeded", "failed"):
                    break
                time.sleep(0.2)
            figures["poll GET /v1/transcriptions/{id}"] = run_wrk(
                f"{server.url}/v1/transcriptions/{task['id']}",
                key=key,
                duration=args.duration,
                connections=args.connections,
                threads=args.threads,
                pid=server.proc.pid if server.proc else None,
            )
        # Phase 2: no workers; wrk submits transcriptions of the uploaded clip.
        with Server(data, workers=0) as server:
            body = json.dumps({"audio_id": up["id"]})
            script = (
                f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
            )
            figures["submit POST /v1/transcriptions"] = run_wrk(
                f"{server.url}/v1/transcriptions",
                key=key,
                duration=args.duration,
                connections=args.connections,
                threads=args.threads,
                script=script,
                pid=server.proc.pid if server.proc else None,
            )
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        head = ("req/s", "p50 ms", "p90 ms", "p99 ms", "non-2xx", "server CPU ms/req")
        print(f"{'what':36} " + " ".join(f"{h:>{max(8, len(h))}}" for h in head))
        for name, f in figures.items():
            cells = (
                f"{f['requests_per_s']:8.0f}",
                f"{f['p50_ms']:8.2f}",
                f"{f['p90_ms']:8.2f}",
                f"{f['p99_ms']:8.2f}",
                f"{f['non_2xx']:8d}",
                f"{f['server_cpu_ms_per_request'] or 0:17.3f}",
            )
            print(f"{name:36} " + " ".join(cells))
        load = os.getloadavg()[0]
        print(
            f"(wrk -t{args.threads} -c{args.connections} -d{args.duration}s on 127.0.0.1; "
            f"{os.cpu_count()} CPU cores shared with wrk and everything else; "
            f"load average {load:.1f} at the end)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
