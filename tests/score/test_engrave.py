"""Verovio renders the MusicXML to SVG pages; CairoSVG and pypdf make a PDF of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from stemscribe.errors import ScoreUnavailableError
from stemscribe.result import Result
from stemscribe.score import engrave
from stemscribe.score.musicxml import musicxml_bytes

pytest.importorskip("verovio")
pytest.importorskip("music21")


def test_example_renders_pages(example_result: Result, tmp_path: Path) -> None:
    pages = engrave.render_svg(musicxml_bytes(example_result))
    assert len(pages) >= 1 and pages[0].lstrip().startswith(("<svg", "<?xml"))
    assert "Flute" in pages[0]


def test_pdf_and_files(waltz: Result, tmp_path: Path) -> None:
    pytest.importorskip("cairosvg")
    pytest.importorskip("pypdf")
    paths = engrave.write_pages(musicxml_bytes(waltz), tmp_path / "waltz")
    assert paths[0].name == "waltz-1.svg" and paths[-1].name == "waltz.pdf"
    assert paths[-1].read_bytes().startswith(b"%PDF")


def test_the_tempo_marks_note_is_outlined_for_cairo(example_result: Result) -> None:
    """Cairo cannot read the SVG's embedded music font: the PDF gets the tempo note as outlines."""
    import re

    page = engrave.render_svg(musicxml_bytes(example_result))[0]
    glyph_text = re.compile(r'<tspan font-family="Leipzig"[^>]*>[^<\s]+</tspan>')
    assert glyph_text.search(page), "Verovio no longer sets the tempo note as text: the test needs a new case"
    outlined = engrave.outline_text_glyphs(page)
    assert not glyph_text.search(outlined)
    assert outlined.count('class="outlined-glyphs"') == 1 and re.search(r"=\s*</tspan>", outlined)
    path = re.search(r'class="outlined-glyphs"><path transform="translate\(([0-9.]+),', outlined)
    text_x = re.search(r'<text x="([0-9.]+)"[^>]*>\s*<tspan[^>]*class="rend"', outlined)
    assert path and text_x and float(text_x.group(1)) > float(path.group(1))  # the text moved past it
    assert engrave.outline_text_glyphs("<svg xmlns='http://www.w3.org/2000/svg'/>") == (
        "<svg xmlns='http://www.w3.org/2000/svg'/>"
    )


def test_a_chord_symbols_sharp_becomes_a_unicode_sharp_for_cairo() -> None:
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg"><g class="harm"><text x="10" y="20" font-size="0px">'
        '<tspan class="text"><tspan font-size="405px">F</tspan>'
        '<tspan font-family="Leipzig" font-size="720px">\uea66</tspan><tspan font-size="405px">m7</tspan>'
        "</tspan></text></g></svg>"
    )
    out = engrave.outline_text_glyphs(svg)
    assert "\uea66" not in out and "Leipzig" not in out
    assert f'font-family="{engrave.UNICODE_FONT}" font-size="405px">\u266f</tspan>' in out
    assert ">F</tspan>" in out and ">m7</tspan>" in out


def test_bad_cases_render(drums_only: Result, empty_result: Result) -> None:
    for result in (drums_only, empty_result):
        assert engrave.render_svg(musicxml_bytes(result))


def test_garbage_is_a_clear_error() -> None:
    with pytest.raises(ScoreUnavailableError, match="Verovio"):
        engrave.render_svg("not a score")


def test_missing_verovio_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real = builtins.__import__

    def fake(name: str, *args: object, **kwargs: object) -> object:
        if name == "verovio":
            raise ImportError(name)
        return real(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ScoreUnavailableError, match=r"stemscribe\[score\]"):
        engrave.render_svg("<score-partwise/>")


def test_renders_from_another_thread(waltz: Result) -> None:
    """Verovio's font path is per thread; a server's worker threads must find the fonts too."""
    import threading

    xml = musicxml_bytes(waltz)
    out: list[object] = []
    thread = threading.Thread(target=lambda: out.append(_pages_or_error(xml)))
    thread.start()
    thread.join()
    assert isinstance(out[0], list) and len(out[0]) >= 1


def _pages_or_error(xml: bytes) -> object:
    try:
        return engrave.render_svg(xml)
    except Exception as exc:  # noqa: BLE001 - handed back to the test's thread
        return exc
