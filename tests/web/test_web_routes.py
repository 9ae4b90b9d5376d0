"""The page and its assets as served by the web router (no browser needed)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from stemscribe.web.routes import CONTENT_SECURITY_POLICY, STATIC_DIR, router

# Reserved example domains (RFC 2606) that appear only as text the user reads or replaces.
PLACEHOLDER_HOSTS = {"example.com", "your-app.example"}
IMPORT_RE = re.compile(r"""^\s*(?:import|export)\b[^'"]*?from\s+["']([^"']+)["']""", re.MULTILINE)
URL_RE = re.compile(r"""\b(?:https?:)?//([a-z0-9.-]+\.[a-z]{2,})""", re.IGNORECASE)


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    app.include_router(router)
    return TestClient(app)


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith("#"):
                self.refs.append(value)
            if name == "id" and value:
                self.ids.append(value)


def _page_refs() -> _Refs:
    parser = _Refs()
    parser.feed((STATIC_DIR / "index.html").read_text(encoding="utf-8"))
    return parser


def _asset_files() -> list[Path]:
    return sorted(p for p in STATIC_DIR.rglob("*") if p.is_file())


def test_page_is_served_with_a_strict_policy(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "connect-src 'self'" in CONTENT_SECURITY_POLICY and "default-src 'self'" in CONTENT_SECURITY_POLICY
    assert '<script type="module" src="static/js/app.js">' in r.text
    assert '<html lang="en">' in r.text


def test_page_has_unique_ids() -> None:
    ids = _page_refs().ids
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


@pytest.mark.parametrize(
    ("path", "type_prefix"),
    [
        ("/static/style.css", "text/css"),
        ("/static/js/app.js", "text/javascript"),
        ("/static/icon.svg", "image/svg+xml"),
    ],
)
def test_assets_have_their_media_type(client: TestClient, path: str, type_prefix: str) -> None:
    r = client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(type_prefix)
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-cache"


def test_every_reference_in_the_page_resolves(client: TestClient) -> None:
    refs = _page_refs().refs
    assert refs, "index.html references no asset"
    for ref in refs:
        assert "//" not in ref, f"index.html points outside the server: {ref}"
        assert client.get("/" + ref.lstrip("/")).status_code == 200, ref


def test_every_module_import_resolves(client: TestClient) -> None:
    modules = [p for p in _asset_files() if p.suffix == ".js"]
    assert len(modules) >= 5
    for module in modules:
        for spec in IMPORT_RE.findall(module.read_text(encoding="utf-8")):
            assert spec.startswith("./"), f"{module.name}: bare or remote import {spec!r}"
            target = (module.parent / spec).resolve()
            rel = target.relative_to(STATIC_DIR).as_posix()
            assert client.get(f"/static/{rel}").status_code == 200, f"{module.name} imports missing {spec}"


def test_assets_name_no_outside_host() -> None:
    for path in _asset_files():
        if path.suffix not in (".html", ".js", ".css", ".svg"):
            continue
        text = path.read_text(encoding="utf-8")
        hosts = set(URL_RE.findall(text)) - PLACEHOLDER_HOSTS - {"www.w3.org"}
        assert not hosts, f"{path.name} names outside hosts {sorted(hosts)}"
        if path.suffix == ".svg":
            assert 'xmlns="http://www.w3.org/2000/svg"' in text  # a namespace name, never fetched


@pytest.mark.parametrize(
    "path",
    [
        "/static/../routes.py",
        "/static/%2e%2e/routes.py",
        "/static/..%2froutes.py",
        "/static/js/../../routes.py",
        "/static/",
        "/static/js",
        "/static/missing.js",
        "/static/js/app.js%00.css",
    ],
)
def test_nothing_outside_the_assets_is_served(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404
    assert "import " not in r.text


def test_static_files_are_package_data() -> None:
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    assert '"web/static/**/*"' in pyproject.read_text(encoding="utf-8")
    assert (STATIC_DIR / "index.html").is_file()


def _hex_luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    """WCAG 2 contrast ratio of two #rrggbb colours."""
    hi, lo = sorted((_hex_luminance(a), _hex_luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _theme_colours() -> dict[str, dict[str, str]]:
    css = (STATIC_DIR / "style.css").read_text(encoding="utf-8")
    dark_at = css.index("@media (prefers-color-scheme: dark)")
    pattern = re.compile(r"--([a-z-]+):\s*(#[0-9a-fA-F]{6})\b")
    light = dict(pattern.findall(css[:dark_at]))
    dark = {**light, **dict(pattern.findall(css[dark_at : css.index("}\n}", dark_at)]))}
    return {"light": light, "dark": dark}


# Text colour on background colour, as the stylesheet pairs them.
TEXT_PAIRS = [
    ("text", "bg"),
    ("text", "card"),
    ("text", "input"),
    ("text", "accent-soft"),
    ("muted", "card"),
    ("muted", "bg"),
    ("muted", "accent-soft"),
    ("accent", "card"),
    ("accent", "bg"),
    ("accent", "accent-soft"),
    ("accent-text", "accent"),
    ("danger", "danger-soft"),
    ("danger", "card"),
    ("ok", "card"),
    ("ok", "bg"),
]


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_text_contrast_meets_wcag_aa(theme: str) -> None:
    colours = _theme_colours()[theme]
    low = {f"{a} on {b}": round(contrast(colours[a], colours[b]), 2) for a, b in TEXT_PAIRS}
    assert all(ratio >= 4.5 for ratio in low.values()), {k: v for k, v in low.items() if v < 4.5}


def test_piano_roll_colours_are_readable() -> None:
    js = (STATIC_DIR / "js" / "roll.js").read_text(encoding="utf-8")
    roll = dict(
        re.findall(r"^\s+([a-zA-Z]+): \"(#[0-9a-f]{6})\",$", js[js.index("const C = {") :], re.MULTILINE)
    )
    assert contrast(roll["gutterText"], roll["gutter"]) >= 4.5
    assert contrast(roll["rulerText"], roll["ruler"]) >= 4.5
    fmt = (STATIC_DIR / "js" / "format.js").read_text(encoding="utf-8")
    palette = re.findall(r"\"(#[0-9a-f]{6})\"", fmt[fmt.index("PALETTE = [") : fmt.index("];")])
    assert len(palette) >= 8 and len(set(palette)) == len(palette)
    for colour in palette:  # notes are graphics: WCAG asks 3:1 against what surrounds them
        assert contrast(colour, roll["bg"]) >= 3, colour
        assert contrast(colour, roll["blackRow"]) >= 3, colour


def test_the_drum_lane_reads_the_library_class_table(client: TestClient) -> None:
    """The page's drum classes are served from DRUM_CLASS_TABLE, not a copy in the JavaScript."""
    from stemscribe.transcription.drums import DRUM_CLASS_TABLE, KEY_TO_CLASS

    r = client.get("/drum-classes.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    classes = r.json()["classes"]
    assert [c["key"] for c in classes] == [c.key for c in DRUM_CLASS_TABLE]
    assert {k: c["key"] for c in classes for k in c["members"]} == KEY_TO_CLASS
    assert sum(c["kit"] for c in classes) == 9 and len(classes) == 22
    synth = (STATIC_DIR / "js" / "synth.js").read_text(encoding="utf-8")
    assert "drum-classes.json" in synth and "44: 46" not in synth
