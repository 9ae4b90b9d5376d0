"""`stemscribe worker` with a fake transcriber, for the scale-out tests: one note per second of audio,
after `STEMSCRIBE_TEST_DELAY` seconds of "transcribing" (reported as progress) for audio longer than
3 s. Touches `STEMSCRIBE_TEST_READY` once the worker consumes."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from celery.signals import worker_ready

from stemscribe.audio import load_audio
from stemscribe.cluster.tasks import run_worker
from stemscribe.result import Instrument, NoteEvent, Result
from stemscribe.settings import Settings
from stemscribe.stems import Family


class SlowFake:
    def transcribe(self, source: Any, *, stem: str = "auto", progress: Any = None) -> Result:
        audio = load_audio(source, sr=None)
        delay = float(os.environ.get("STEMSCRIBE_TEST_DELAY", "0")) if audio.duration > 3 else 0.0
        steps = max(1, int(delay / 0.2))
        for i in range(steps):
            if progress:
                progress("transcribing", i / steps)
            time.sleep(delay / steps)
        n = max(1, int(audio.duration))
        notes = [NoteEvent(60 + i % 12, float(i), i + 0.5, 0.8) for i in range(n)]
        inst = Instrument("Acoustic Grand Piano", 0, False, Family.PIANO, notes)
        return Result([inst], audio.duration, stem if stem != "auto" else "mix", 120.0, [0.0, 0.5], "none")


def _ready(**_kwargs: Any) -> None:
    Path(os.environ["STEMSCRIBE_TEST_READY"]).touch()


if __name__ == "__main__":
    worker_ready.connect(_ready, weak=False)
    run_worker(
        Settings(), factory=lambda _s: SlowFake(), concurrency=int(sys.argv[1]) if len(sys.argv) > 1 else 1
    )
