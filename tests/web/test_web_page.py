"""The page in headless Chromium against a test double of the /v1 API: errors, API keys, links, helpers.

The end-to-end run against the real server and model is in test_web_e2e.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

pytestmark = pytest.mark.browser

TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One second of a 440 Hz tone."""
    path = tmp_path_factory.mktemp("clip") / "tone.wav"
    t = np.arange(22050) / 22050
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 22050)
    return path


def test_a_failed_job_is_explained_in_plain_words(
    page_on: Any, serve_app: Any, fake_api: Any, tmp_path: Path, clip: Path, artifacts: Path
) -> None:
    with serve_app(fake_api()) as base:
        page, watch = page_on(base, width=390, height=844)
        page.click("#go")
        assert page.text_content("#error strong") == "Choose an audio file or paste a link first."

        bad = tmp_path / "notaudio.wav"
        bad.write_bytes(clip.read_bytes())
        page.set_input_files("#file", str(bad))
        assert "notaudio.wav" in page.text_content("#file-name")
        page.click("#go")
        page.wait_for_selector(
            "#error:not([hidden]) >> text=That file could not be read as audio.", timeout=TIMEOUT_MS
        )
        assert "tried soundfile, PyAV" in page.text_content("#error")
        assert page.is_hidden("#result")
        assert page.is_enabled("#go")
        page.screenshot(path=str(artifacts / "error-390.png"), full_page=True)

        page.fill("#url", "ftp://example.com/a.mp3")
        page.click("#go")
        assert page.text_content("#error strong") == "That link is not a web address."
        assert watch.errors == []
        assert watch.outside(base) == []


def test_the_api_key_is_asked_for_kept_and_sent(
    page_on: Any, serve_app: Any, fake_api: Any, clip: Path
) -> None:
    with serve_app(fake_api(api_key="s3cret-key")) as base:
        page, watch = page_on(base)
        page.wait_for_selector("#jobs-note >> text=The API key was not accepted", timeout=TIMEOUT_MS)
        page.set_input_files("#file", str(clip))
        page.click("#go")
        page.wait_for_selector("#error:not([hidden])", timeout=TIMEOUT_MS)
        assert "API key" in page.text_content("#error strong")
        # The panel opens and takes focus as the error is shown; under load that may land a moment later.
        page.wait_for_function(
            "() => document.getElementById('key-panel').open && document.activeElement.id === 'api-key'",
            timeout=TIMEOUT_MS,
        )

        page.fill("#api-key", "s3cret-key")
        page.press("#api-key", "Enter")
        page.wait_for_selector("#key-state >> text=API key: saved", timeout=TIMEOUT_MS)
        assert page.text_content("#key-state") == "API key: saved"
        assert page.evaluate("localStorage.getItem('stemscribe.apiKey')") == "s3cret-key"
        page.wait_for_selector("#jobs-note >> text=No jobs yet", timeout=TIMEOUT_MS)

        page.click("#go")
        page.wait_for_selector("#result:not([hidden])", timeout=TIMEOUT_MS)
        assert page.locator("#instruments .instrument").count() == 3
        # The original audio needs the key too: it is fetched with it and played from a blob: URL.
        page.wait_for_function("() => window.stemscribe.player.originalReady", timeout=TIMEOUT_MS)
        assert page.evaluate("window.stemscribe.player.original.src").startswith("blob:")
        with page.expect_download() as info:
            page.click("#dl-json")
        assert (
            json.loads(Path(info.value.path()).read_text())["instruments"][0]["name"]
            == "Acoustic Grand Piano"
        )

        page.reload()
        page.wait_for_selector("#result:not([hidden])", timeout=TIMEOUT_MS)  # reopened from #job=<id>
        assert page.locator("#jobs .job").count() == 1
        assert not [e for e in watch.errors if "status of 401" not in e]
        assert watch.outside(base) == []


def test_a_link_job_and_the_view_controls(page_on: Any, serve_app: Any, fake_api: Any) -> None:
    fake = fake_api()
    with serve_app(fake) as base:
        page, watch = page_on(base)
        page.fill("#url", "https://example.com/song.mp3")
        page.select_option("#stem", "piano")
        page.click("#go")
        page.wait_for_selector("#result:not([hidden])", timeout=TIMEOUT_MS)
        task = next(iter(fake.state.fake.tasks.values()))
        assert (task.audio_id, task.filename, task.stem) == (None, "song.mp3", "piano")
        assert "stem: piano" in page.text_content("#result-summary")
        # No stored audio: only the transcription can be played, and there is no id for the dialects.
        assert page.is_disabled("#ab-original")
        assert "no longer stored" in page.text_content("#original-note")
        assert "no stored audio id" in page.text_content("#snippets")

        roll = page.locator("#roll")
        assert roll.get_attribute("data-instruments") == "3"
        assert roll.get_attribute("data-notes") == "20"
        assert roll.get_attribute("data-drawn") == "20"
        page.uncheck("#show-2")  # hide the drums
        page.wait_for_function("() => document.getElementById('roll').dataset.notes === '12'")
        assert roll.get_attribute("data-instruments") == "2"

        page.click("#zoom-in")
        page.click("#zoom-in")
        page.wait_for_function("() => Number(document.getElementById('zoom').value) > 0")
        next_frame = "new Promise(r => requestAnimationFrame(() => r(roll.dataset.drawn)))"
        drawn = int(roll.evaluate(f"roll => {next_frame}"))
        assert 0 < drawn < 12
        page.focus("#roll-scroll")
        page.keyboard.press("End")
        page.wait_for_function("() => document.getElementById('roll-scroll').scrollLeft > 0")
        page.keyboard.press("0")
        page.wait_for_function("() => document.getElementById('zoom').value === '0'")

        # Clicking the roll moves the playhead; Space plays from there.
        box = roll.bounding_box()
        page.mouse.click(box["x"] + 46 + (box["width"] - 46) * 0.5, box["y"] + 100)
        assert abs(page.evaluate("window.stemscribe.player.time()") - 2.0) < 0.1
        page.keyboard.press("Space")
        page.wait_for_function("() => window.stemscribe.player.time() > 2.2", timeout=TIMEOUT_MS)
        page.keyboard.press("Space")
        assert page.evaluate("window.stemscribe.player.playing") is False
        assert watch.errors == []


def test_page_helpers(page_on: Any, serve_app: Any, fake_api: Any) -> None:
    with serve_app(fake_api()) as base:
        page, _ = page_on(base)
        got = page.evaluate(
            """async () => {
              const s = await import('./static/js/snippets.js');
              const f = await import('./static/js/format.js');
              const r = await import('./static/js/roll.js');
              const y = await import('./static/js/synth.js');
              await y.loadDrumClasses();
              const a = await import('./static/js/api.js');
              return {
                snippets: s.dialectRequests('http://host:8000/', "it's-1"),
                keyless: s.dialectRequests('http://host:8000', 'x', {auth: false}).map(d => d.command),
                times: [f.formatTime(0), f.formatTime(65.34), f.formatTime(59.99)],
                labels: [r.rulerLabel(65, 5), r.rulerLabel(1.25, 0.25), r.rulerLabel(0.5, 0.5)],
                names: [r.noteName(60), r.noteName(21), r.noteName(61)],
                drums: [36, 35, 44, 48, 57, 81, 54, 62, 28].map(y.drumClass),
                drumNames: [42, 63].map(c => y.DRUM_CLASS_NAMES[c]),
                lane: [y.DRUM_ORDER[0], ...y.DRUM_ORDER.slice(-3)],
                err401: f.describeError({status: 401, code: 'http_401', message: ''}),
                errCode: f.describeError({status: 400, code: 'bad_audio', message: 'not usable as audio: x'}),
                errOther: f.describeError({status: 418, code: 'teapot', message: 'short and stout'}),
                parsed: [
                  a.parseErrorBody(400, {error: {code: 'bad_request', message: 'm'}}),
                  a.parseErrorBody(422, {detail: [{loc: ['body', 'stem'], msg: 'bad'}]}),
                  a.parseErrorBody(500, 'Internal Server Error'),
                ],
              };
            }"""
        )
    by_id = {s["id"]: s for s in got["snippets"]}
    assert set(by_id) == {"acedata", "aimusicapi", "kie"}
    assert "curl -X POST 'http://host:8000/suno/midi'" in by_id["acedata"]["command"]
    assert all('-H "Authorization: Bearer $STEMSCRIBE_API_KEY"' in s["command"] for s in got["snippets"])
    assert not any("Authorization" in c for c in got["keyless"])
    assert "'http://host:8000/api/v1/suno/midi'" in by_id["aimusicapi"]["command"]
    assert "'http://host:8000/api/v1/midi/generate'" in by_id["kie"]["command"]
    # The id holds a quote: the shell sees it escaped, and the JSON body is exact.
    body = by_id["kie"]["command"].split("-d '", 1)[1].rstrip("'").replace("'\\''", "'")
    assert json.loads(body) == {
        "taskId": "it's-1",
        "audioId": "it's-1",
        "callBackUrl": "https://your-app.example/midi-callback",
    }
    assert got["times"] == ["0:00.0", "1:05.3", "0:59.9"]
    assert got["labels"] == ["1:05", "0:01.25", "0:00.5"]
    assert got["names"] == ["C4", "A0", "C♯4"]
    assert got["drums"] == [36, 36, 42, 47, 49, 81, 54, 63, 0]  # the library's 22-class table
    assert got["drumNames"] == ["Closed hat", "High conga/bongo"]
    assert got["lane"] == [81, 38, 36, 0]  # auxiliary percussion on top, kick at the bottom, then Perc
    assert "needs an API key" in got["err401"]["headline"]
    assert got["errCode"] == {
        "headline": "That file could not be read as audio.",
        "detail": "not usable as audio: x",
    }
    assert got["errOther"] == {"headline": "Something went wrong.", "detail": "short and stout"}
    assert got["parsed"] == [
        {"code": "bad_request", "message": "m"},
        {"code": "invalid_request", "message": "stem: bad"},
        {"code": "http_500", "message": "Internal Server Error"},
    ]


def test_keyboard_only_and_drag_and_drop(page_on: Any, serve_app: Any, fake_api: Any, clip: Path) -> None:
    with serve_app(fake_api()) as base:
        page, watch = page_on(base)
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.className") == "skip-link"
        page.keyboard.press("Enter")
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.id") == "file"
        from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

        # Headless Chromium now and then drops the key's file-chooser event under load: the key gets
        # three tries, each with its own wait, and must open the chooser from the keyboard.
        for _ in range(3):
            try:
                with page.expect_file_chooser(timeout=8000) as chooser:
                    page.keyboard.press("Space")
                break
            except PlaywrightTimeoutError:
                assert page.evaluate("() => document.activeElement.id") == "file"
        else:
            pytest.fail("Space on the focused file button never opened the file chooser")
        chooser.value.set_files(str(clip))
        assert "tone.wav" in page.text_content("#file-name")
        for expected in ("url", "stem", "go"):
            page.keyboard.press("Tab")
            assert page.evaluate("() => document.activeElement.id") == expected
        page.keyboard.press("Enter")
        page.wait_for_selector("#result:not([hidden])", timeout=TIMEOUT_MS)

        # The transport is reachable with Tab and works with the keyboard.
        page.focus("#go")
        for _ in range(30):
            page.keyboard.press("Tab")
            if page.evaluate("() => document.activeElement.id") == "play":
                break
        else:
            pytest.fail("Tab never reached the Play button")
        page.keyboard.press("Enter")
        page.wait_for_function("() => window.stemscribe.player.playing", timeout=TIMEOUT_MS)
        page.keyboard.press("Tab")  # onto "back to the start"
        page.keyboard.press("b")
        assert page.evaluate("() => window.stemscribe.player.mode") == "original"
        assert page.is_checked("#ab-original")
        page.keyboard.press("a")
        assert page.evaluate("() => window.stemscribe.player.mode") == "midi"
        page.keyboard.press("Space")  # the focused button's own Space: back to the start
        page.focus("#roll-scroll")
        page.keyboard.press("Space")
        assert page.evaluate("() => window.stemscribe.player.playing") is False

        # A file dropped on the zone, or anywhere on the page, is taken; the browser does not open it itself.
        dropped = page.evaluate(
            """() => {
              const dt = new DataTransfer();
              dt.items.add(new File([new Uint8Array(2048)], 'dropped.flac', {type: 'audio/flac'}));
              const zone = document.getElementById('drop');
              const init = {dataTransfer: dt, bubbles: true, cancelable: true};
              zone.dispatchEvent(new DragEvent('dragenter', init));
              const highlighted = zone.classList.contains('dragging');
              const ev = new DragEvent('drop', init);
              zone.dispatchEvent(ev);
              return [highlighted, zone.classList.contains('dragging'), ev.defaultPrevented,
                      window.stemscribe.state.file && window.stemscribe.state.file.name];
            }"""
        )
        assert dropped == [True, False, True, "dropped.flac"]
        assert "dropped.flac · 2 KB" in page.text_content("#file-name")
        beside = page.evaluate(
            """() => {
              const dt = new DataTransfer();
              dt.items.add(new File([new Uint8Array(10)], 'beside.ogg', {type: 'audio/ogg'}));
              const ev = new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true});
              document.querySelector('footer').dispatchEvent(ev);
              return [ev.defaultPrevented, window.stemscribe.state.file.name];
            }"""
        )
        assert beside == [True, "beside.ogg"]
        assert watch.errors == []


def test_a_long_dense_result_renders_and_plays(page_on: Any, serve_app: Any, fake_api: Any) -> None:
    """20 minutes, 3 x 25,000 notes: more than a JavaScript call may take as spread arguments."""
    n = 25_000
    step = 1200.0 / n
    instruments = [
        {
            "name": name,
            "program": program,
            "is_drum": is_drum,
            "family": family,
            "notes": [
                {"pitch": low + (i * 7) % span, "start": i * step, "end": i * step + 0.04, "velocity": 0.5}
                for i in range(n)
            ],
        }
        for name, program, is_drum, family, low, span in [
            ("Acoustic Grand Piano", 0, False, "piano", 48, 36),
            ("Electric Bass (finger)", 33, False, "bass", 28, 20),
            ("Drums", 0, True, "drums", 35, 25),
        ]
    ]
    big = {
        "instruments": instruments,
        "duration": 1200.0,
        "stem": "mix",
        "tempo": 120.0,
        "beats": [],
        "separator": "none",
    }
    with serve_app(fake_api(result=big)) as base:
        page, watch = page_on(base)
        page.fill("#url", "https://example.com/long.flac")
        page.click("#go")
        page.wait_for_selector("#result:not([hidden])", timeout=60_000)
        roll = page.locator("#roll")
        assert roll.get_attribute("data-notes") == str(3 * n)
        assert roll.get_attribute("data-drawn") == str(3 * n)
        assert "20:00.0" in page.text_content("#clock")
        page.click("#zoom-in")
        page.wait_for_function("() => Number(document.getElementById('roll').dataset.drawn) < 75000")
        page.click("#play")
        page.wait_for_function("() => window.stemscribe.player.time() > 0.3", timeout=TIMEOUT_MS)
        page.click("#play")
        assert watch.errors == []


def test_every_synth_voice_sounds(page_on: Any, serve_app: Any, fake_api: Any) -> None:
    """Render each family's voice and each drum voice offline: audible, finite, not clipping, and short."""
    with serve_app(fake_api()) as base:
        page, watch = page_on(base)
        levels = page.evaluate(
            """async () => {
              const {Synth} = await import('./static/js/synth.js');
              const families = ['piano', 'keys', 'guitar', 'bass', 'strings', 'brass', 'winds', 'synth',
                                'vocals'];
              const kit = [36, 38, 42, 46, 45, 47, 50, 49, 51, 76];
              const voices = families
                .map(family => ({family, isDrum: false, pitch: family === 'bass' ? 40 : 64}))
                .concat(kit.map(pitch => ({family: 'drums', isDrum: true, pitch})));
              const out = {};
              for (const v of voices) {
                const ctx = new OfflineAudioContext(1, 44100 * 2, 44100);
                new Synth(ctx).play(ctx.destination, {...v, velocity: 1, when: 0.01, duration: 0.5});
                const data = (await ctx.startRendering()).getChannelData(0);
                let peak = 0, sum = 0, tail = 0;
                for (let i = 0; i < data.length; i++) {
                  const x = data[i];
                  if (!Number.isFinite(x)) return {error: `${v.family}/${v.pitch} is not finite`};
                  peak = Math.max(peak, Math.abs(x));
                  sum += x * x;
                  if (i > 44100 * 1.6) tail = Math.max(tail, Math.abs(x));
                }
                out[`${v.family}/${v.pitch}`] = {peak, rms: Math.sqrt(sum / data.length), tail};
              }
              return out;
            }"""
        )
        assert watch.errors == []
    assert "error" not in levels, levels
    assert len(levels) == 19
    for voice, level in levels.items():
        assert 0.01 < level["peak"] < 1.0, (voice, level)
        assert level["rms"] > 0.001, (voice, level)
        assert level["tail"] < 0.01, (voice, level)  # a 0.5 s note has died away well before 1.6 s


def test_the_score_view_shows_the_pages_and_downloads(
    page_on: Any, serve_app: Any, fake_api: Any, tmp_path: Path, artifacts: Path
) -> None:
    pytest.importorskip("verovio", reason="the score extra is not installed")
    fake = fake_api()
    with serve_app(fake) as base:
        page, watch = page_on(base)
        page.fill("#url", "https://example.com/song.mp3")
        page.click("#go")
        page.wait_for_selector("#result:not([hidden])", timeout=TIMEOUT_MS)
        assert page.is_visible("#roll-view") and page.is_hidden("#score-view")
        assert fake.state.fake.score_requests == 0  # nothing is engraved until the view opens

        page.click("#tab-score")
        assert page.get_attribute("#tab-score", "aria-selected") == "true"
        assert page.is_hidden("#roll-view") and page.is_visible("#score-view")
        page.wait_for_selector("#score-pages[data-state=ready]", timeout=TIMEOUT_MS)
        pages = int(page.get_attribute("#score-pages", "data-pages") or 0)
        assert pages >= 1
        loaded = page.eval_on_selector_all(
            "#score-pages img", "imgs => imgs.map(i => i.complete && i.naturalWidth > 0)"
        )
        assert loaded == [True] * pages
        assert "4/4" in page.text_content("#score-status")
        page.screenshot(path=str(artifacts / "score-1400.png"), full_page=True)

        with page.expect_download() as info:
            page.click("#score-dl-pdf")
        assert info.value.suggested_filename == "song.pdf"
        saved = tmp_path / "song.pdf"
        info.value.save_as(str(saved))
        assert saved.read_bytes().startswith(b"%PDF")
        with page.expect_download() as info:
            page.click("#dl-musicxml")
        assert info.value.suggested_filename == "song.musicxml"

        # Back to the roll with the keyboard, and to the score again: the pages are not fetched twice.
        page.focus("#tab-score")
        page.keyboard.press("ArrowLeft")
        assert page.is_visible("#roll-view") and page.evaluate("document.activeElement.id") == "tab-roll"
        page.keyboard.press("ArrowRight")
        page.wait_for_selector("#score-pages[data-state=ready]", timeout=TIMEOUT_MS)
        assert fake.state.fake.score_requests == 1
        assert watch.errors == []
        assert watch.outside(base) == []


def test_the_score_view_explains_a_server_without_the_score_extra(
    page_on: Any, serve_app: Any, fake_api: Any
) -> None:
    fake = fake_api()
    fake.state.fake.score_error = (
        503,
        "score_unavailable",
        "Engraving pages needs verovio, which is not installed",
    )
    with serve_app(fake) as base:
        page, watch = page_on(base, width=390, height=844)
        page.fill("#url", "https://example.com/song.mp3")
        page.click("#go")
        page.wait_for_selector("#result:not([hidden])", timeout=TIMEOUT_MS)
        page.click("#tab-score")
        page.wait_for_selector("#score-pages[data-state=failed]", state="attached", timeout=TIMEOUT_MS)
        status = page.text_content("#score-status") or ""
        assert "Sheet music is not installed" in status and "verovio" in status
        assert page.locator("#score-pages img").count() == 0
        assert [e for e in watch.errors if "503" not in e] == []  # the browser logs the failed fetch
