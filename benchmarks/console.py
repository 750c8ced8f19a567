"""The web console's first page load and the size of its static files.

Starts a real ``billumy serve``, then in Debian's chromium (Playwright, ``executable_path``)
loads ``/console`` in a fresh browser context (empty cache), signs in with the key already in
the tab's session storage, and times from navigation start until the Playground is usable
(its model list filled from ``/api/tags``). The same run times a bare page of this origin
(``/health``) as the floor the machine and browser set. Also sums the console's files as the
server sends them gzipped. Targets: under 1 s to a usable page, under 300 KB compressed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from billumy.api.console import Assets  # noqa: E402
from tests.e2e.server import Server  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
TARGET_S = 1.0
TARGET_BYTES = 300 * 1024


def compressed_sizes(srv: Server) -> dict[str, int]:
    """Each console file as the server sends it to a client that takes gzip."""
    sizes = {}
    with httpx.Client(base_url=srv.url, headers={"Accept-Encoding": "gzip"}) as client:
        for name in sorted(Assets().all()):
            path = "/console" if name == "index.html" else f"/console/{name}"
            if name == "docs.html":
                path = "/docs"
            response = client.get(path)
            response.raise_for_status()
            sizes[name] = int(response.headers["content-length"])
    return sizes


def page_loads(srv: Server, runs: int) -> tuple[list[float], list[float]]:
    from playwright.sync_api import sync_playwright

    console, floor = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        for _ in range(runs):
            context = browser.new_context()
            key = srv.api_key
            context.add_init_script(f"sessionStorage.setItem('billumy.key', {key!r})")
            page = context.new_page()
            page.goto(srv.url + "/health")
            floor.append(page.evaluate("performance.getEntriesByType('navigation')[0].duration"))
            page.goto(srv.url + "/console#/playground")
            # (wait_for_function would evaluate a string, which the page's policy refuses)
            page.locator("select[name=model] option").first.wait_for(state="attached")
            console.append(page.evaluate("performance.now()"))
            context.close()
        browser.close()
    return [ms / 1000 for ms in console], [ms / 1000 for ms in floor]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        srv = Server(data_dir=Path(data_dir)).start()
        try:
            sizes = compressed_sizes(srv)
            console, floor = page_loads(srv, args.runs)
        finally:
            srv.stop()
    total = sum(sizes.values())
    for name, size in sizes.items():
        print(f"  {name:<20} {size / 1024:7.1f} KB gzipped")
    print(
        f"static files: {total / 1024:.1f} KB gzipped in all"
        f" (target {TARGET_BYTES / 1024:.0f} KB: {total / TARGET_BYTES:.2f}x of it)"
    )
    median, floor_median = statistics.median(console), statistics.median(floor)
    print(
        f"first load of /console to a usable Playground, fresh context, median of"
        f" {len(console)}: {median * 1000:.0f} ms (max {max(console) * 1000:.0f} ms);"
        f" a bare /health page in the same browser: {floor_median * 1000:.0f} ms"
        f" ({median / floor_median:.1f}x); target {TARGET_S * 1000:.0f} ms:"
        f" {median / TARGET_S:.2f}x of it"
    )


if __name__ == "__main__":
    main()
