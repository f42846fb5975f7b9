"""The studio's static files as the server serves them: every script the page loads (index.html's <script>s
and the modules they import) answers 200 as JavaScript, none lies unused, each file stays small, and the
package data ships them all."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from tests.server.conftest import app_client
from yingxi.server.app import STATIC_DIR

MAX_LINES = 450  # the project's size for one focused file
JAVASCRIPT = {"text/javascript", "application/javascript"}
# `import … from "./x.js"`, `export … from "./x.js"`, `import "./x.js"` and `import("./x.js")`.
IMPORT = re.compile(r"""^\s*(?:import|export)\b[^;"']*["'](\.{1,2}/[^"']+)["']|\bimport\s*\(\s*["'](\.{1,2}/[^"']+)["']""",
                    re.M)  # fmt: skip


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts.append(dict(attrs))


def test_every_script_the_studio_loads_is_served_as_javascript(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        parser = _Scripts()
        parser.feed(page.text)
        tags = [s for s in parser.scripts if s.get("src")]
        assert tags, "the studio page loads no script"

        pending = [urljoin("/", str(s["src"])) for s in tags]
        served: dict[str, str] = {}
        while pending:
            url = pending.pop()
            if url in served:
                continue
            r = client.get(url)
            assert r.status_code == 200, f"{url}: {r.status_code}"
            kind = r.headers["content-type"].split(";")[0].strip()
            assert kind in JAVASCRIPT, f"{url} is served as {kind}"
            served[url] = r.text
            pending += [urljoin(url, a or b) for a, b in IMPORT.findall(r.text)]

    # A file that imports or exports is a module: a classic <script> of it would not even parse.
    for s in tags:
        text = served[urljoin("/", str(s["src"]))]
        if re.search(r"^\s*(?:import|export)\b", text, re.M):
            assert s.get("type") == "module", f"{s['src']} uses import/export but is not loaded as a module"
    # Every script in the folder is reached from the page: none missing from it, none left behind unused.
    on_disk = {f"/{p.relative_to(STATIC_DIR).as_posix()}" for p in STATIC_DIR.rglob("*.js")}
    assert {urlsplit(u).path for u in served} == on_disk


def test_no_static_file_exceeds_the_line_limit() -> None:
    files = [p for p in STATIC_DIR.rglob("*") if p.is_file()]
    assert files
    long = {}
    for p in files:
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES:
            long[p.relative_to(STATIC_DIR).as_posix()] = n
    assert not long, f"split these by concern (at most {MAX_LINES} lines each): {long}"


def test_the_package_data_ships_every_static_file() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    root = Path(__file__).resolve().parents[2]
    package = root / "src" / "yingxi"
    if STATIC_DIR.resolve() != (package / "server" / "static").resolve():
        pytest.skip("yingxi is imported from an installed copy, not this checkout")
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = setuptools["package-data"]["yingxi"]
    shipped = {p for pattern in patterns for p in package.glob(pattern)}  # as setuptools expands them
    files = [p for p in STATIC_DIR.rglob("*") if p.is_file()]
    missing = [p.relative_to(STATIC_DIR).as_posix() for p in files if p not in shipped]
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"


def test_the_studio_is_revalidated_on_every_load(tmp_path: Path) -> None:
    """No-cache with an ETag: a browser asks again after an upgrade, and an unchanged file answers 304."""
    with app_client(tmp_path) as client:
        for path in ("/", "/studio.js"):
            first = client.get(path)
            assert first.headers["cache-control"] == "no-cache" and first.headers["etag"], path
            again = client.get(path, headers={"If-None-Match": first.headers["etag"]})
            assert again.status_code == 304, path
