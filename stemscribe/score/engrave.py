"""Engraved pages of a score: SVG with Verovio, and a PDF of them with CairoSVG and pypdf.

CairoSVG draws Verovio's SVG as it is (its <symbol>/<use> glyphs and text included) through cairo, which
Debian ships as libcairo2; svglib + reportlab was the other candidate, but it does not resolve the
<use> references to <symbol> glyphs that Verovio's music font is made of. CairoSVG writes one PDF per
page; pypdf joins them.
"""

from __future__ import annotations

import io
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
        pdf = cairosvg.svg2pdf(bytestring=svg.encode("utf-8"))
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
