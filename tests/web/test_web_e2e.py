"""The page against the real server: upload a rendered clip, watch the job, see, hear and download it.

The server is `stemscribe.service.app.create_app` with its worker threads and the real model, on a free
loopback port with its data in a temporary folder. Screenshots go to test-artifacts/web/.
"""

from __future__ import annotations

import importlib.util
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.browser

JOB_TIMEOUT_MS = 180_000
TIMEOUT_MS = 20_000

# Colour pixels of each instrument present on the roll's canvas (notes are drawn opaque).
COUNT_COLOURS = """(canvas) => {
  const g = canvas.getContext('2d');
  const {data} = g.getImageData(0, 0, canvas.width, canvas.height);
  const swatches = [...document.querySelectorAll('#instruments .swatch')];
  return swatches.map(s => getComputedStyle(s).backgroundColor).map(css => {
    const [r, gg, b] = css.match(/\\d+/g).map(Number);
    let n = 0;
    for (let i = 0; i < data.length; i += 4) if (data[i] === r && data[i+1] === gg && data[i+2] === b) n++;
    return n;
  });
}"""


@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory, serve_app: Any) -> Iterator[str]:
    pytest.importorskip("basic_pitch", reason="basic-pitch (the pitch model's weights) is not installed")
    from stemscribe.service.app import create_app
    from stemscribe.settings import Settings

    data = tmp_path_factory.mktemp("server-data")
    settings = Settings(data_dir=data, workers=1, worker_threads=True, host="127.0.0.1")
    with serve_app(create_app(settings)) as base:
        yield base


def _server_task(base: str, task_id: str) -> dict[str, Any]:
    r = httpx.get(f"{base}/v1/transcriptions/{task_id}", timeout=30)
    r.raise_for_status()
    return r.json()


def _page_counts(page: Any) -> dict[str, Any]:
    return page.evaluate(
        """() => ({
          instruments: [...document.querySelectorAll('#instruments .instrument')]
            .map(li => Number(li.dataset.notes)),
          names: [...document.querySelectorAll('#instruments .inst-name')].map(n => n.firstChild.textContent),
          roll: {...document.getElementById('roll').dataset},
        })"""
    )


def _check_roll_matches(page: Any, task: dict[str, Any]) -> None:
    result = task["result"]
    counts = [len(i["notes"]) for i in result["instruments"]]
    shown = _page_counts(page)
    assert shown["instruments"] == counts
    assert shown["names"] == [i["name"] for i in result["instruments"]]
    assert shown["roll"]["instruments"] == str(len(counts))
    assert shown["roll"]["notes"] == str(sum(counts))
    assert shown["roll"]["drawn"] == str(sum(counts))  # at "fit" zoom every note is in view
    pixels = page.locator("#roll").evaluate(COUNT_COLOURS)
    for inst, n in zip(result["instruments"], pixels, strict=True):
        assert n > 0 or not inst["notes"], f"{inst['name']} has notes but none of its colour is on the roll"


def test_upload_watch_play_and_download(
    page_on: Any, real_server: str, rendered_band: tuple[Path, Any], artifacts: Path
) -> None:
    import mido

    wav, _truth = rendered_band
    page, watch = page_on(real_server, width=1400, height=1000)
    page.wait_for_selector("#jobs-note >> text=No jobs yet", timeout=TIMEOUT_MS)
    page.set_input_files("#file", str(wav))
    page.click("#go")
    page.wait_for_selector("#progress:not([hidden])", timeout=TIMEOUT_MS)
    page.screenshot(path=str(artifacts / "progress-1400.png"))
    page.wait_for_selector("#result:not([hidden])", timeout=JOB_TIMEOUT_MS)
    assert page.is_visible("#error") is False, page.text_content("#error")

    task_id = page.get_attribute("#result", "data-task-id")
    assert page.evaluate("() => location.hash") == f"#job={task_id}"
    assert page.text_content("#announce").startswith("Transcription ready: ")
    task = _server_task(real_server, task_id)
    assert task["state"] == "succeeded" and task["filename"] == wav.name
    result = task["result"]
    assert result["instruments"] and sum(len(i["notes"]) for i in result["instruments"]) > 0
    page.wait_for_timeout(100)
    _check_roll_matches(page, task)
    page.screenshot(path=str(artifacts / "result-1400.png"), full_page=True)

    # Play: the audio clock runs, the position and the playhead move; B switches to the original.
    page.wait_for_function("() => window.stemscribe.player.originalReady", timeout=TIMEOUT_MS)
    page.click("#play")
    page.wait_for_function("() => window.stemscribe.player.time() > 0.4", timeout=TIMEOUT_MS)
    clock = page.evaluate(
        "() => [window.stemscribe.player.ctx.state, window.stemscribe.player.ctx.currentTime]"
    )
    page.wait_for_timeout(300)
    later = page.evaluate("() => window.stemscribe.player.ctx.currentTime")
    assert clock[0] == "running" and later > clock[1]
    assert page.text_content("#play-label") == "Pause"
    assert not page.text_content("#clock").startswith("0:00.0")
    page.click("label[for=ab-original]")
    page.wait_for_function(
        "() => { const p = window.stemscribe.player; return p.mode === 'original' && !p.original.paused "
        "&& p.original.currentTime > 0.2 }",
        timeout=TIMEOUT_MS,
    )
    page.click("label[for=ab-midi]")
    page.click(".instrument .mute")
    assert page.evaluate("() => window.stemscribe.player.tracks[0].muted") is True
    page.screenshot(path=str(artifacts / "playing-1400.png"))
    page.click("#play")
    assert page.evaluate("() => window.stemscribe.player.playing") is False

    # Downloads: each is a valid file and carries the same notes.
    files = {}
    for link in ("#dl-midi", "#dl-midi-q", "#dl-json"):
        with page.expect_download() as info:
            page.click(link)
        files[link] = (info.value.suggested_filename, Path(info.value.path()).read_bytes())
    stem = wav.stem
    assert [name for name, _ in files.values()] == [f"{stem}.mid", f"{stem}.quantized.mid", f"{stem}.json"]
    total = sum(len(i["notes"]) for i in result["instruments"])
    for link in ("#dl-midi", "#dl-midi-q"):
        data = files[link][1]
        assert data[:4] == b"MThd"
        midi = mido.MidiFile(file=io.BytesIO(data))
        note_ons = sum(1 for track in midi.tracks for m in track if m.type == "note_on" and m.velocity > 0)
        assert note_ons == total, link
    assert json.loads(files["#dl-json"][1])["instruments"] == result["instruments"]

    # The Score view: the server engraves the pages on first opening; the PDF downloads.
    if importlib.util.find_spec("verovio") is not None:
        page.click("#tab-score")
        page.wait_for_selector("#score-pages[data-state=ready]", timeout=JOB_TIMEOUT_MS)
        assert int(page.get_attribute("#score-pages", "data-pages") or 0) >= 1
        assert result["time_signature"] in page.text_content("#score-status")
        page.screenshot(path=str(artifacts / "score-e2e-1400.png"), full_page=True)
        with page.expect_download() as info:
            page.click("#score-dl-pdf")
        assert Path(info.value.path()).read_bytes().startswith(b"%PDF")
        page.click("#tab-roll")

    # The AceData request as copied from the page runs against this server for the same audio.
    page.click('[data-dialect="acedata"] .copy')
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert task["audio_id"] in copied and real_server in copied
    for dialect in ("aimusicapi", "kie"):
        assert task["audio_id"] in page.text_content(f'[data-dialect="{dialect}"] pre')
    url = re.search(r"curl -X POST '([^']+)'", copied).group(1)
    body = json.loads(copied.split("-d '", 1)[1].rstrip("'"))
    answer = httpx.post(url, json=body, timeout=120).json()
    assert answer["success"] is True
    assert len(answer["data"][0]["instruments"]) == len(result["instruments"])

    assert page.locator(f'#jobs .job[data-id="{task_id}"] .job-state').text_content() == "done"
    assert watch.errors == []
    assert watch.outside(real_server) == []


def test_refusals_and_reopening_a_recent_job_in_a_narrow_window(
    page_on: Any, real_server: str, rendered_band: tuple[Path, Any], artifacts: Path, tmp_path: Path
) -> None:
    wav, _ = rendered_band
    with httpx.Client(base_url=real_server, timeout=30) as client:
        upload = client.post("/v1/uploads", files={"file": (wav.name, wav.read_bytes(), "audio/wav")})
        assert upload.status_code == 201, upload.text
        created = client.post("/v1/transcriptions", json={"audio_id": upload.json()["id"], "stem": "auto"})
        assert created.status_code == 202, created.text
    task_id = created.json()["id"]

    page, watch = page_on(real_server, width=390, height=844)
    # The server's refusals, in plain words with its detail below.
    text = tmp_path / "notes.txt"
    text.write_text("not a song\n" * 50)
    page.set_input_files("#file", str(text))
    page.click("#go")
    page.wait_for_selector("#error:not([hidden])", timeout=TIMEOUT_MS)
    assert page.text_content("#error strong") == "That file could not be read as audio."
    assert "not a recognised audio format" in page.text_content("#error span")
    page.fill("#url", "http://127.0.0.1:9/song.mp3")
    page.click("#go")
    page.wait_for_selector(
        "#error strong >> text=The server is not allowed to fetch that link.", timeout=TIMEOUT_MS
    )
    assert "loopback" in page.text_content("#error span")
    page.screenshot(path=str(artifacts / "refused-390.png"), full_page=True)

    job = page.locator(f'#jobs .job[data-id="{task_id}"]')
    job.wait_for(timeout=TIMEOUT_MS)
    job.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#result:not([hidden])", timeout=JOB_TIMEOUT_MS)
    assert page.get_attribute("#result", "data-task-id") == task_id
    task = _server_task(real_server, task_id)
    _check_roll_matches(page, task)
    # Nothing sticks out sideways on a phone.
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(artifacts / "result-390.png"), full_page=True)
    assert [e for e in watch.errors if "status of 400 (Bad Request)" not in e] == []  # the two refusals
    assert watch.outside(real_server) == []
