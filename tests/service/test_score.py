"""Sheet music of a finished task: MusicXML, SVG pages and PDF, native and signed, and the bad cases."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stemscribe.result import Instrument, NoteEvent, Result
from stemscribe.stems import Family

from .conftest import upload, wait_task

music21 = pytest.importorskip("music21")
pytest.importorskip("verovio")


class ScriptedTranscriber:
    """Answers every request with the same Result."""

    def __init__(self, result: Result) -> None:
        self.result = result

    def transcribe(self, source: Any, *, stem: str = "auto", progress: Any = None) -> Result:
        return self.result


def band(seconds: float = 8.0, period: float = 0.5) -> Result:
    """Piano chords, a bass and a drum beat in 4/4, C F G C."""
    chords = [(60, 64, 67), (60, 65, 69), (59, 62, 67), (60, 64, 67)]
    roots = [36, 41, 43, 36]
    n = int(seconds / period)
    piano, bass, kit = [], [], []
    for i in range(n):
        t = i * period
        chord = chords[(i // 4) % 4]
        piano += [NoteEvent(p, t, t + 0.45, 0.7) for p in chord]
        if i % 4 == 0:
            bass.append(NoteEvent(roots[(i // 4) % 4], t, t + 1.9, 0.8))
        kit.append(NoteEvent(36 if i % 2 == 0 else 38, t, t + 0.1, 0.9))
    return Result(
        [
            Instrument("Acoustic Grand Piano", 0, False, Family.PIANO, piano),
            Instrument("Electric Bass (finger)", 33, False, Family.BASS, bass),
            Instrument("Drums", 0, True, Family.DRUMS, kit),
        ],
        seconds,
        "mix",
        120.0,
        [i * period for i in range(n)],
    )


def finished(make_client: Callable[..., TestClient], result: Result) -> tuple[TestClient, dict[str, Any]]:
    client = make_client(transcriber=ScriptedTranscriber(result))
    up = upload(client, name="My Song.wav")
    task = client.post("/v1/transcriptions", json={"audio_id": up["id"]}).json()
    done = wait_task(client, task["id"])
    assert done["state"] == "succeeded", done
    return client, done


def test_score_downloads_native_and_signed(make_client: Callable[..., TestClient]) -> None:
    client, task = finished(make_client, band())
    prefix = f"/v1/transcriptions/{task['id']}"
    assert task["musicxml_url"] == f"{prefix}.musicxml" and task["pdf_url"] == f"{prefix}.pdf"
    assert task["score_url"] == f"{prefix}/score"
    result = task["result"]
    assert result["time_signature"] == "4/4" and result["key"] == "C major"
    assert [c["symbol"] for c in result["chords"]][:4] == ["C", "F", "G", "C"]

    xml = client.get(task["musicxml_url"])
    assert xml.status_code == 200 and xml.headers["content-type"].startswith("application/vnd.recordare")
    assert "My%20Song.musicxml" in xml.headers["content-disposition"]
    score = music21.converter.parse(xml.content, format="musicxml")
    assert len(score.parts) == 3
    assert score.metadata.bestTitle == "My Song"

    r = client.get(task["score_url"])
    assert r.status_code == 200, r.text
    index = r.json()
    assert index["pages"] >= 1 and index["time_signature"] == "4/4" and index["key"] == "C major"
    assert index["page_urls"] == [f"{prefix}/score/{n}.svg" for n in range(1, index["pages"] + 1)]
    page = client.get(index["page_urls"][0])
    assert page.status_code == 200 and page.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in page.content[:400]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert client.get(f"{prefix}/score/{index['pages'] + 1}.svg").status_code == 404

    pdf = client.get(task["pdf_url"])
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")

    # signed links work without a token, and a tampered one does not
    links = index["links"]
    anonymous = TestClient(client.app, client=("203.0.113.9", 4000))  # not loopback: no local principal
    assert anonymous.get(task["musicxml_url"]).status_code == 401
    for url in (links["musicxml"], links["pdf"], links["pages"][0]):
        path = url.split("://", 1)[1].split("/", 1)[1]
        assert anonymous.get("/" + path).status_code == 200, url
    assert anonymous.get("/" + links["pdf"].split("/", 3)[3].replace("s=", "s=0")).status_code == 403


def test_score_is_made_once_and_kept(make_client: Callable[..., TestClient], monkeypatch: Any) -> None:
    client, task = finished(make_client, band(4.0))
    import stemscribe.score.engrave as engrave

    calls = []
    real = engrave.render_svg
    monkeypatch.setattr(engrave, "render_svg", lambda xml: calls.append(1) or real(xml))
    for _ in range(3):
        assert client.get(task["score_url"]).status_code == 200
    assert client.get(task["pdf_url"]).status_code == 200
    assert len(calls) == 1


@pytest.mark.parametrize("kind", ["empty", "drums"])
def test_bad_cases_give_a_score(make_client: Callable[..., TestClient], kind: str) -> None:
    full = band(4.0)
    result = Result([] if kind == "empty" else [full.instruments[2]], 4.0, "mix", 120.0, full.beats)
    client, task = finished(make_client, result)
    assert task["result"]["key"] is None and task["result"]["chords"] == []
    score = music21.converter.parse(client.get(task["musicxml_url"]).content, format="musicxml")
    assert len(score.parts) == 1
    assert client.get(task["score_url"]).json()["pages"] >= 1
    assert client.get(task["pdf_url"]).content.startswith(b"%PDF")


@pytest.mark.slow
def test_ten_minute_song_gives_a_score(make_client: Callable[..., TestClient]) -> None:
    song = band(600.0, 0.5)
    client, task = finished(make_client, song)
    index = client.get(task["score_url"])
    assert index.status_code == 200 and index.json()["pages"] > 5


def test_unfinished_failed_and_missing_extra(
    make_client: Callable[..., TestClient], monkeypatch: Any
) -> None:
    client, task = finished(make_client, band(4.0))
    monkeypatch.setitem(sys.modules, "verovio", None)  # `import verovio` now raises ImportError
    r = client.get(task["score_url"])
    assert r.status_code == 503 and r.json()["error"]["code"] == "score_unavailable"
    assert "stemscribe[score]" in r.json()["error"]["message"]
    monkeypatch.undo()

    import stemscribe.score.engrave as engrave

    def broken(xml: Any) -> list[str]:
        raise RuntimeError("layout exploded")

    monkeypatch.setattr(engrave, "render_svg", broken)
    r = client.get(task["score_url"])
    assert r.status_code == 422 and r.json()["error"]["code"] == "score_failed"
    assert "layout exploded" in r.json()["error"]["message"]
    assert client.get("/v1/transcriptions/nope.musicxml").status_code == 404


def test_dialects_carry_score_links(make_client: Callable[..., TestClient]) -> None:
    client, task = finished(make_client, band(4.0))
    """Beside the midi links the dialects already hand out (aimusicapi's task list, kie's record-info);
    seed 001's `/api/v1/suno/midi` answer keeps exactly its two fields."""
    from stemscribe.service.shapes import aimusic_midi_answer, aimusic_task_item, kie_midi_record

    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    record = ctx.store.get_task(task["id"], None)
    assert set(aimusic_midi_answer(ctx, record)["data"]) == {"midi_url", "instruments"}
    data = aimusic_task_item(ctx, record, None)
    assert "/files/musicxml/" in data["musicxml_url"] and "/files/pdf/" in data["pdf_url"]
    kie = kie_midi_record(ctx, record)
    assert "/files/musicxml/" in kie["musicxmlUrl"] and "/files/pdf/" in kie["pdfUrl"]
    got = client.get("/" + data["musicxml_url"].split("/", 3)[3])
    assert got.status_code == 200 and b"score-partwise" in got.content[:2000]
    assert io.BytesIO(client.get("/" + data["pdf_url"].split("/", 3)[3]).content).read(4) == b"%PDF"
