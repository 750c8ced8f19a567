"""The console's files, read as text (no browser, no server): everything the pages load is
shipped, nothing comes from another origin, no text is ever inserted as HTML, and every
string the scripts show exists in both languages. The browser tests are
tests/e2e/test_console.py."""

from __future__ import annotations

import re

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from billumy.api.console import CSP, Assets, console_routes
from billumy.settings import Settings

FILES = Assets().all()
SCRIPTS = {name: a.body.decode() for name, a in FILES.items() if name.endswith(".js")}
PAGES = {name: a.body.decode() for name, a in FILES.items() if name.endswith(".html")}


def test_what_the_pages_load_is_shipped() -> None:
    assert {"index.html", "docs.html", "app.js", "docs.js", "console.css"} <= set(FILES)
    for name, html in PAGES.items():
        for ref in re.findall(r'(?:src|href)="(/[^"]*)"', html):
            if ref.startswith("/console/"):
                assert ref.removeprefix("/console/") in FILES, (name, ref)
            else:
                assert ref in ("/console", "/docs"), (name, ref)
    for name, script in SCRIPTS.items():
        for imported in re.findall(r'from "\./([^"]+)"', script):
            assert imported in FILES, (name, imported)


def test_nothing_from_elsewhere_and_nothing_inline() -> None:
    for name, asset in FILES.items():
        # (an SVG's namespace, in a file or a script's createElementNS, is a name, not a place
        # anything is fetched from)
        text = asset.body.decode().replace('"http://www.w3.org/2000/svg"', "")
        assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text), name
    for name, html in PAGES.items():
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), name
        assert "<style" not in html and " style=" not in html, name
        assert not re.search(r"\son[a-z]+=", html), name  # no inline event handlers


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_no_text_goes_in_as_html(name: str) -> None:
    script = SCRIPTS[name]
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, (name, sink)
    assert "new Function" not in script and 'setAttribute("on' not in script


def test_every_string_is_in_both_languages() -> None:
    source = SCRIPTS["i18n.js"]
    english, portuguese = source.split('"pt-BR": {', 1)
    keys = re.compile(r'^\s+"?([\w.]+)"?: "', re.M)
    en = set(keys.findall(english.split("en: {", 1)[1]))
    pt = set(keys.findall(portuguese))
    assert en == pt, en ^ pt
    used = {k for s in SCRIPTS.values() for k in re.findall(r'\bt\("([\w.]+)"\)', s)}
    used |= {k for html in PAGES.values() for k in re.findall(r'data-i18n="([\w.]+)"', html)}
    assert used <= en, used - en


def test_the_files_are_served_with_the_policy() -> None:
    app = Starlette(routes=console_routes(Settings()))
    with TestClient(app) as client:
        for path in ("/console", "/console/", "/docs", "/console/app.js", "/console/icon.svg"):
            response = client.get(path)
            assert response.status_code == 200, path
            assert response.headers["content-security-policy"] == CSP
            assert response.headers["x-content-type-options"] == "nosniff"
        assert client.get("/console/app.js").headers["content-type"].startswith("text/javascript")
        missing = client.get("/console/nothing.js")
        assert missing.status_code == 404 and missing.headers["content-security-policy"] == CSP
    assert "'unsafe-inline'" not in CSP and "'unsafe-eval'" not in CSP
    assert "frame-ancestors 'none'" in CSP and "default-src 'self'" in CSP
