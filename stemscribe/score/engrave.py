"""Engraved pages of a score: SVG with Verovio, and a PDF of them with CairoSVG and pypdf.

CairoSVG draws Verovio's SVG as it is (its <symbol>/<use> glyphs and text included) through cairo, which
Debian ships as libcairo2; svglib + reportlab was the other candidate, but it does not resolve the
<use> references to <symbol> glyphs that Verovio's music font is made of. CairoSVG writes one PDF per
page; pypdf joins them. One thing cairo cannot draw: music glyphs set as text in the music font (the
note of a tempo mark, "♩ = 120"), which the SVG carries as an embedded web font that browsers read and
cairo does not; for the PDF they become the font's own outlines where they open a text
(`outline_text_glyphs`, from the glyph files Verovio ships) and the matching Unicode signs in a system
font inside one (a chord symbol's sharps and flats).
"""

from __future__ import annotations

import functools
import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stemscribe.errors import EngravingError
from stemscribe.score.errors import missing


@dataclass(frozen=True, slots=True)
class PageOptions:
    """Verovio's layout: page size in tenths of a millimetre (A4 by default), scale in percent."""

    page_width: int = 2100
    page_height: int = 2970
    scale: int = 40
    margin: int = 100


def _toolkit(options: PageOptions) -> Any:
    try:
        import verovio
    except ImportError:
        raise missing("verovio", "Engraving pages") from None
    verovio.enableLog(verovio.LOG_OFF)
    tk = verovio.toolkit()
    # The package points Verovio at its fonts for the importing thread only; a toolkit made in another
    # thread (a server's worker pool) would look in the build's path and read nothing.
    tk.setResourcePath(str(Path(verovio.__file__).resolve().parent / "data"))
    tk.setOptions(
        {
            "pageWidth": options.page_width,
            "pageHeight": options.page_height,
            "scale": options.scale,
            "pageMarginTop": options.margin,
            "pageMarginBottom": options.margin,
            "pageMarginLeft": options.margin,
            "pageMarginRight": options.margin,
            "adjustPageHeight": False,
            "footer": "none",
        }
    )
    return tk


def render_svg(musicxml: bytes | str, options: PageOptions | None = None) -> list[str]:
    """SVG documents of the pages of a MusicXML score, first page first."""
    tk = _toolkit(options or PageOptions())
    text = musicxml.decode("utf-8") if isinstance(musicxml, bytes) else musicxml
    if not tk.loadData(text):
        raise EngravingError("Verovio could not read the MusicXML")
    pages = int(tk.getPageCount())
    if pages < 1:
        raise EngravingError("Verovio laid out no page for the MusicXML")
    return [str(tk.renderToSVG(page)) for page in range(1, pages + 1)]


SVG_NS = "http://www.w3.org/2000/svg"
_FONT_SIZE = re.compile(r"([0-9.]+)px")


def _verovio_data() -> Path | None:
    try:
        import verovio
    except ImportError:
        return None
    return Path(verovio.__file__).resolve().parent / "data"


@functools.cache
def _glyph_widths(font: str) -> dict[str, tuple[float, float]]:
    """The music font's glyphs as (advance width in ems, ems per font unit) by character, from Verovio's
    index of the font; empty where the font or Verovio is not there."""
    data = _verovio_data()
    index = None if data is None else data / f"{font}.xml"
    if index is None or not index.is_file():
        return {}
    root = ET.parse(index).getroot()
    per_unit = 1.0 / float(root.get("units-per-em", "1000"))
    return {
        chr(int(code, 16)): (float(advance) * per_unit, per_unit)
        for g in root.iter("g")
        if (code := g.get("c")) is not None and (advance := g.get("h-a-x")) is not None
    }


@functools.cache
def _glyph_path(font: str, char: str) -> str | None:
    """SVG path data of one glyph in font units (y up), from its file in Verovio's data folder."""
    data = _verovio_data()
    path_file = None if data is None else data / font / f"{ord(char):04X}.xml"
    if path_file is None or not path_file.is_file():
        return None
    path = ET.parse(path_file).getroot().find("path")
    return None if path is None or not path.get("d") else str(path.get("d"))


def _drawable(font: str, content: str) -> bool:
    widths = _glyph_widths(font)
    return bool(widths) and all(c in widths and _glyph_path(font, c) is not None for c in content)


def outline_text_glyphs(svg: str) -> str:
    """The SVG with each run of music-font glyphs that opens a text (a tempo mark's note) drawn as the
    glyphs' outlines, and the rest of that text moved along by their width; what it cannot place is
    left as it was."""
    if 'font-family="' not in svg:
        return svg
    ET.register_namespace("", SVG_NS)
    ET.register_namespace("xlink", "http://www.w3.org/1999/xlink")
    root = ET.fromstring(svg)
    changed = False
    for parent in root.iter():
        for index, text in enumerate(list(parent)):
            if text.tag == f"{{{SVG_NS}}}text" and _outline_leading_glyphs(parent, index, text):
                changed = True
    for tspan in root.iter(f"{{{SVG_NS}}}tspan"):
        changed |= _unicode_glyphs(tspan)
    return ET.tostring(root, encoding="unicode") if changed else svg


# Music-font glyphs inside a text (a chord symbol's accidentals, in SMuFL's figured-bass and accidental
# ranges) as the Unicode characters a system font draws, where cairo cannot place the outlines (it
# does not say how wide the text before them is).
UNICODE_GLYPHS = {
    "\uea63": "\u266d\u266d", "\uea64": "\u266d", "\uea65": "\u266e", "\uea66": "\u266f", "\uea67": "x",
    "\ue260": "\u266d", "\ue261": "\u266e", "\ue262": "\u266f", "\ue263": "x", "\ue264": "\u266d\u266d",
    "\u266d": "\u266d", "\u266e": "\u266e", "\u266f": "\u266f", "\ueca5": "\u2669", "\ueca7": "\u266a",
}  # fmt: skip
UNICODE_FONT = "DejaVu Sans"  # Debian's fonts-dejavu-core, which cairo pulls in: it has these signs
UNICODE_SCALE = 0.5625  # a music-font em is larger than a text font's: 720 px glyphs beside 405 px text


def _unicode_glyphs(tspan: ET.Element) -> bool:
    content = tspan.text or ""
    if not tspan.get("font-family") or not content.strip() or len(tspan):
        return False
    if any(c not in UNICODE_GLYPHS for c in content.strip()):
        return False
    size = _FONT_SIZE.fullmatch(tspan.get("font-size", ""))
    tspan.text = "".join(UNICODE_GLYPHS.get(c, c) for c in content)
    tspan.set("font-family", UNICODE_FONT)
    if size is not None:
        tspan.set("font-size", f"{float(size.group(1)) * UNICODE_SCALE:g}px")
    return True


def _outline_leading_glyphs(parent: ET.Element, index: int, text: ET.Element) -> bool:
    """Replace the music-font tspans at the start of `text` (a child of `parent`) by paths."""
    if (text.text or "").strip() or any((el.tail or "").strip() for el in text.iter() if el is not text):
        return False  # Verovio puts all text inside tspans; anything else is left alone
    holders = {child: node for node in text.iter() for child in node}
    runs: list[ET.Element] = []
    for el in text.iter():  # document order: an element's own text comes before its children
        content = (el.text or "").strip()
        if el is text or not content:
            continue
        if not _drawable(el.get("font-family", ""), content):
            break
        runs.append(el)
    if not runs:
        return False
    try:
        x, y = float(text.get("x", "")), float(text.get("y", ""))
        sizes = [float(_FONT_SIZE.fullmatch(el.get("font-size", "")).group(1)) for el in runs]  # type: ignore[union-attr]
    except (ValueError, AttributeError):
        return False
    group = ET.Element(f"{{{SVG_NS}}}g", {"class": "outlined-glyphs"})
    for el, size in zip(runs, sizes, strict=True):
        font = el.get("font-family", "")
        for char in (el.text or "").strip():
            advance, per_unit = _glyph_widths(font)[char]
            d = str(_glyph_path(font, char))
            k = size * per_unit  # the glyph files' paths carry scale(1,-1): font units, y up
            transform = f"translate({x:g},{y:g}) scale({k:g},{-k:g})"
            ET.SubElement(group, f"{{{SVG_NS}}}path", {"transform": transform, "d": d})
            x += advance * size
        holders[el].remove(el)
    text.set("x", f"{x:g}")
    parent.insert(index, group)
    return True


def render_pdf(pages: list[str]) -> bytes:
    """One PDF of SVG pages (render_svg's), through CairoSVG and pypdf."""
    try:
        import cairosvg
    except (ImportError, OSError) as exc:  # OSError: the cairo library itself is missing
        raise missing("cairosvg", f"A PDF of the pages ({exc})") from None
    try:
        from pypdf import PdfReader, PdfWriter
    except ImportError:
        raise missing("pypdf", "A PDF of the pages") from None
    writer = PdfWriter()
    for svg in pages:
        pdf = cairosvg.svg2pdf(bytestring=outline_text_glyphs(svg).encode("utf-8"))
        for page in PdfReader(io.BytesIO(pdf)).pages:
            writer.add_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def write_pages(musicxml: bytes | str, stem: str | Path, *, pdf: bool = True) -> list[Path]:
    """Write STEM-1.svg, STEM-2.svg, ... (and STEM.pdf with `pdf`) beside each other; return the paths."""
    stem = Path(stem)
    pages = render_svg(musicxml)
    paths = []
    for i, svg in enumerate(pages, start=1):
        path = stem.with_name(f"{stem.name}-{i}.svg")
        path.write_text(svg, encoding="utf-8")
        paths.append(path)
    if pdf:
        path = stem.with_name(f"{stem.name}.pdf")
        path.write_bytes(render_pdf(pages))
        paths.append(path)
    return paths
