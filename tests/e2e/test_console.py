"""The web console and the API reference in a real browser: Debian's chromium, driven by
Playwright (launched through ``executable_path``, nothing downloaded), against a real
``billumy serve`` with the embedded model.

Every page is loaded with the network cut off but for the server under test (a request
anywhere else fails the test), and any Content Security Policy violation the browser reports
fails it too. A screenshot of each page goes to ``test-artifacts/console/``.

The server's own key (tenant ``default``, the global admin tenant) is a global admin; the Keys
& usage tests make tenant admins and other keys through the admin API."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.server import Server, free_port
from tests.logscan import SESSION

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
# A reply that cannot end by itself before it is stopped (as tests/e2e/test_faults.py).
ENDLESS_OPTIONS = {"num_predict": 3000, "temperature": 0.8}
ENDLESS_FORMAT = {
    "type": "object",
    "properties": {"t": {"type": "string", "minLength": 2000}},
    "required": ["t"],
}
SCRIPT = "<script>window.__pwned = 1</script>"
IMG = '<img src=x onerror="window.__pwned = 2">'
SALES_CSV = (
    "month,region,revenue\n"
    "2024-01-01,Sul,1200.5\n2024-01-01,Norte,800\n2024-01-01,Centro,950\n"
    "2024-02-01,Sul,1300\n2024-02-01,Norte,700\n2024-02-01,Centro,990\n"
    "2024-03-01,Sul,1250\n2024-03-01,Norte,760\n2024-03-01,Centro,1010\n"
)


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(data_dir=tmp_path_factory.mktemp("console")).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(
            "Debian's chromium is not installed at /usr/bin/chromium (apt-get install chromium;"
            " .ci/run installs it): the browser tests of the console cannot run"
        )
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield launched
        launched.close()


class Tab:
    """A browser tab on the console: a page that may reach only the server under test."""

    def __init__(self, browser: Any, server: Server, **context: Any) -> None:
        self.server = server
        self.context = browser.new_context(**{"locale": "en-US", **context})
        self.outside: list[str] = []
        self.violations: list[str] = []
        self.context.route("**/*", self._only_local)
        self.page = self.context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.violations.append(f"page error: {error}"))

    def _only_local(self, route: Any) -> None:
        url = route.request.url
        if url.startswith(self.server.url + "/") or url.startswith(("blob:", "data:")):
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def _console(self, message: Any) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.violations.append(message.text)

    def sign_in(self, key: str | None = None) -> Any:
        page = self.page
        page.goto(self.server.url + "/console")
        page.get_by_label("API key").fill(key or self.server.api_key or "")
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("navigation").get_by_role("link", name="Playground").wait_for()
        return page

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()
        assert not self.outside, f"the page reached outside the server: {self.outside}"
        assert not self.violations, self.violations


@pytest.fixture
def tab(browser: Any, console_server: Server) -> Iterator[Tab]:
    opened = Tab(browser, console_server)
    yield opened
    opened.close()


def until(page: Any, expression: str, timeout_s: float = 30.0) -> None:
    """Wait until ``expression`` is truthy in the page. (Playwright's wait_for_function
    evaluates a string, which this page's policy rightly refuses.)"""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"never true: {expression}"
        page.wait_for_timeout(100)


def _csp(response: httpx.Response) -> dict[str, str]:
    policy = response.headers["content-security-policy"]
    return {
        part.strip().split(" ", 1)[0]: part.strip().partition(" ")[2]
        for part in policy.split(";")
        if part.strip()
    }


def test_console_files_carry_a_strict_policy(console_server: Server) -> None:
    for path in ("/console", "/console/", "/console/app.js", "/console/console.css", "/docs"):
        response = httpx.get(console_server.url + path)
        assert response.status_code == 200, path
        policy = _csp(response)
        assert policy["default-src"] == "'self'"
        assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
        assert policy["frame-ancestors"] == "'none'"
        assert "unsafe-inline" not in response.headers["content-security-policy"]
        assert "unsafe-eval" not in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
    html = httpx.get(console_server.url + "/console").text
    # No inline script or style: every script is a file of this origin.
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert "style=" not in html and "<style" not in html
    # Nothing but the console's own files.
    for path in ("/console/..%2Fapi%2Fps", "/console/missing.js", "/console/__init__.py"):
        response = httpx.get(console_server.url + path)
        assert response.status_code == 404, path
        assert "error" in response.json()
    gz = httpx.get(console_server.url + "/console/app.js", headers={"Accept-Encoding": "gzip"})
    assert gz.headers["content-encoding"] == "gzip"
    again = httpx.get(
        console_server.url + "/console/app.js", headers={"If-None-Match": gz.headers["etag"]}
    )
    assert again.status_code == 304
    head = httpx.head(console_server.url + "/console", headers={"Accept-Encoding": "identity"})
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(html.encode())


def test_the_reference_needs_a_key_unless_public(
    console_server: Server, make_server: type[Server], tmp_path: Path
) -> None:
    url = console_server.url + "/docs/openapi.json"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer bk_nope"}).status_code == 401
    document = httpx.get(url, headers=console_server.headers).json()
    assert "/api/chat" in document["paths"]
    public = make_server(data_dir=tmp_path / "public", env={"BILLUMY_PUBLIC_DOCS": "true"})
    public.start()
    assert "/api/chat" in httpx.get(public.url + "/docs/openapi.json").json()["paths"]
    # The API itself is no more public for it.
    assert httpx.get(public.url + "/openapi.json").status_code == 401
    assert httpx.get(public.url + "/api/tags").status_code == 401


def test_sign_in_keeps_the_key_in_the_tab_only(tab: Tab) -> None:
    page = tab.page
    page.goto(tab.server.url + "/console")
    # By keyboard: the key field has the focus, Enter signs in.
    page.keyboard.type("bk_not-a-key")
    page.keyboard.press("Enter")
    page.get_by_role("alert").filter(has_text="does not know this key").wait_for()
    assert page.evaluate("sessionStorage.getItem('billumy.key')") is None
    tab.shot("sign-in")
    page.get_by_label("API key").fill(tab.server.api_key or "")
    page.keyboard.press("Enter")
    page.get_by_role("navigation").wait_for()
    assert page.evaluate("sessionStorage.getItem('billumy.key')") == tab.server.api_key
    assert page.evaluate("localStorage.getItem('billumy.key')") is None
    assert page.evaluate("document.cookie") == ""
    assert tab.context.cookies() == []
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("API key").wait_for()
    assert page.evaluate("sessionStorage.getItem('billumy.key')") is None


def test_stream_a_chat_stop_it_and_find_it_in_conversations(tab: Tab) -> None:
    page = tab.sign_in()
    model = page.get_by_label("Model or persona")
    model.select_option("smollm2-135m:latest")
    page.get_by_text("Options and format").click()
    page.get_by_label("Options (JSON)").fill(json.dumps(ENDLESS_OPTIONS))
    page.get_by_label("Format (JSON schema").fill(json.dumps(ENDLESS_FORMAT))
    message = f"zebracorn {SCRIPT} {IMG} tell me a story"
    page.get_by_label("Message").fill(message)
    # The request as it will go: kept, a chat made then the message; not kept, /api/chat.
    curl = page.locator("pre code").first
    expect(curl).to_contain_text("/chats/$CHAT_ID/messages")
    keep = page.get_by_label("Keep in Conversations")
    keep.uncheck()
    expect(curl).to_contain_text("/api/chat")
    keep.check()
    page.get_by_role("button", name="Send").click()
    answer = page.locator(".transcript .msg.assistant .content")
    expect(answer).to_have_text(re.compile(r"[\s\S]{40,}"), timeout=60_000)
    assert re.fullmatch(r"\d+ ms", page.locator(".stats dd output").nth(1).inner_text())
    page.get_by_role("button", name="Stop").click()
    page.locator(".transcript .msg.assistant .note").filter(has_text="Stopped.").wait_for()
    assert page.get_by_role("button", name="Send").is_enabled()
    assert int(page.locator(".stats dd output").first.inner_text()) > 0
    # The message is shown as typed, and nothing in it ran.
    assert page.locator(".transcript .msg.user .content").inner_text() == message
    assert page.locator(".transcript script, .transcript img").count() == 0
    assert page.evaluate("window.__pwned") is None
    shown = curl.inner_text()
    python = page.locator("pre code").nth(1).inner_text()
    assert "$BILLUMY_KEY" in shown and (tab.server.api_key or "") not in shown
    assert "from ollama import Client" in python and "num_predict" in python
    stopped_text = answer.inner_text()
    tab.shot("playground")

    page.get_by_role("link", name="Conversations").click()
    page.get_by_label("Search the messages").fill("zebracorn")
    page.get_by_role("button", name="Search", exact=True).click()
    found = page.locator(".chats li[data-chat]")
    found.first.wait_for()
    assert found.count() == 1
    chat_id = found.first.get_attribute("data-chat")
    # The server stores the cut reply once it sees the client gone (within a generation step).
    deadline = time.monotonic() + 30
    stored_url = f"{tab.server.url}/chats/{chat_id}"
    while httpx.get(stored_url, headers=tab.server.headers).json()["message_count"] < 2:
        assert time.monotonic() < deadline, "the stopped reply was never stored"
        time.sleep(0.1)
    found.first.get_by_role("button").click()
    reader = page.locator(".reader")
    reader.locator(".msg.user .content").wait_for()
    assert reader.locator(".msg.user .content").inner_text() == message
    assert reader.locator(".msg.assistant.stopped .note").inner_text() == "Stopped."
    # What was stored is what was shown when the stop came (or its first part).
    stored = reader.locator(".msg.assistant .content").inner_text()
    assert stored and stopped_text.startswith(stored[: min(len(stored), 20)])
    assert page.evaluate("window.__pwned") is None
    tab.shot("conversations")
    with page.expect_download() as download:
        reader.get_by_role("button", name="Export JSON").click()
    exported = json.loads(Path(download.value.path()).read_text())
    assert exported["id"] == chat_id
    assert [m["role"] for m in exported["messages"]] == ["user", "assistant"]
    assert exported["messages"][1]["incomplete"] is True
    page.once("dialog", lambda dialog: dialog.accept())
    reader.get_by_role("button", name="Delete").click()
    page.get_by_text("Conversation deleted.").wait_for()
    gone = httpx.get(f"{tab.server.url}/chats/{chat_id}", headers=tab.server.headers)
    assert gone.status_code == 404


def test_upload_a_csv_ask_it_and_see_the_chart(tab: Tab, tmp_path: Path) -> None:
    sales = tmp_path / "sales.csv"
    sales.write_text(SALES_CSV)
    page = tab.sign_in()
    page.get_by_role("link", name="Data").click()
    page.get_by_label("File", exact=True).set_input_files(str(sales))
    page.get_by_label("Name (optional)").fill("sales")
    page.get_by_role("button", name="Upload").click()
    profile = page.locator("table").first
    profile.wait_for()
    for column in ("month", "region", "revenue"):
        assert profile.get_by_text(column, exact=True).count() >= 1
    page.get_by_label("Question", exact=True).fill("Which region sold the most?")
    page.get_by_role("button", name="Ask", exact=True).click()
    answer = page.locator(".answer-text")
    answer.wait_for(timeout=120_000)
    assert "Sul" in answer.inner_text()
    chart = page.locator(".chart img").first
    chart.wait_for()
    until(page, "document.querySelector('.chart img').naturalWidth > 0")
    assert chart.get_attribute("src", timeout=1000).startswith("blob:")
    facts = page.locator("ol.facts > li")
    assert facts.count() >= 1
    facts.first.get_by_text("SQL").click()
    assert "SELECT" in facts.first.locator("pre code").inner_text().upper()
    # A second version, asked again: the history lists both, each with its version.
    page.get_by_label("Add as a new version").check()
    sales.write_text(SALES_CSV + "2024-04-01,Norte,5000\n")
    page.get_by_label("File", exact=True).set_input_files(str(sales))
    page.get_by_role("button", name="Upload").click()
    page.get_by_text("Dataset stored.").wait_for()
    page.get_by_label("Question", exact=True).fill("Which region sold the most?")
    page.get_by_role("button", name="Ask", exact=True).click()
    history = page.locator("ol.history > li")
    expect(history.nth(1)).to_be_visible(timeout=120_000)
    # What moved since the question was asked of version 1.
    changes = page.locator("section.changes")
    expect(changes.get_by_role("heading")).to_have_text("Changes since version 1")
    expect(changes.locator("li").first).to_be_visible()
    versions = " ".join(history.all_inner_texts())
    assert "Version 1" in versions and "Version 2" in versions
    tab.shot("data")


def test_column_names_holding_markup_render_as_text(tab: Tab, tmp_path: Path) -> None:
    hostile = tmp_path / "hostile.csv"
    hostile.write_text(f'"{SCRIPT}","{IMG.replace(chr(34), chr(39))}",amount\nx,y,1\nz,w,2\n')
    page = tab.sign_in()
    page.get_by_role("link", name="Data").click()
    page.get_by_label("File", exact=True).set_input_files(str(hostile))
    page.get_by_role("button", name="Upload").click()
    profile = page.locator("table").first
    profile.get_by_text(SCRIPT, exact=True).wait_for()
    assert profile.get_by_text(IMG.replace('"', "'"), exact=True).count() == 1
    assert page.locator("main script, main table img").count() == 0
    page.wait_for_timeout(200)  # an onerror would have fired by now
    assert page.evaluate("window.__pwned") is None
    tab.shot("data-hostile-columns")


def test_server_page_refreshes(tab: Tab) -> None:
    page = tab.sign_in()
    page.get_by_role("link", name="Server").click()
    queue = page.locator("dd[data-name='Queue depth']")
    queue.wait_for()
    assert re.fullmatch(r"\d+", queue.inner_text())
    assert page.locator("dd[data-name='Status']").inner_text() in ("ready", "degraded")
    updated = page.locator("main p.meta").first
    expect(updated).to_have_text(re.compile(r".+"))
    first = updated.inner_text()
    expect(updated).not_to_have_text(first, timeout=15_000)
    tab.shot("server")


def test_docs_work_offline_with_the_console_key(tab: Tab) -> None:
    page = tab.page
    page.goto(tab.server.url + "/docs")
    page.get_by_role("alert").filter(has_text="BILLUMY_PUBLIC_DOCS").wait_for()
    tab.sign_in()
    page.goto(tab.server.url + "/docs")
    chat = page.locator(
        "details.op", has=page.locator(".path", has_text=re.compile(r"^/api/chat$"))
    )
    chat.first.wait_for()
    chat.first.locator("summary").click()
    assert chat.first.get_by_role("link", name="ChatRequest").count() == 1
    page.get_by_label("Filter operations").fill("/datasets")
    assert page.locator("details.op[data-search]:visible").count() >= 2
    tab.shot("docs")


# --- Keys & usage ---------------------------------------------------------------------------


def api(srv: Server, method: str, path: str, key: str | None = None, **kwargs: Any) -> Any:
    """The admin API (the global admin's key unless ``key``)."""
    headers = {"Authorization": f"Bearer {key or srv.api_key}"}
    return httpx.request(method, srv.url + path, headers=headers, timeout=120, **kwargs)


def made_key(srv: Server, **body: Any) -> dict[str, Any]:
    r = api(srv, "POST", "/admin/keys", json=body)
    assert r.status_code == 201, r.text
    made: dict[str, Any] = r.json()
    SESSION.add_secret(made["key"], "key made by the admin API")
    return made


def use(srv: Server, key: str) -> None:
    """A few tokens of the model on ``key``, so that it has usage (once it is stored)."""
    r = api(
        srv,
        "POST",
        "/api/generate",
        key,
        json={"model": "smollm2-135m:latest", "prompt": "Hi", "stream": False,
              "options": {"num_predict": 3}},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    # Usage is written to the store in batches (every second): wait until it is there.
    key_id = api(srv, "GET", "/whoami", key).json()["id"]
    deadline = time.monotonic() + 30
    while not api(srv, "GET", "/admin/usage", params={"key": key_id}).json()["usage"]:
        assert time.monotonic() < deadline, "the usage was never written"
        time.sleep(0.2)


def key_row(page: Any, name: str) -> Any:
    return page.locator(
        "table.keys tbody tr", has=page.get_by_role("rowheader", name=name, exact=True)
    )


def held(page: Any) -> str:
    """What the page holds beyond its HTML: the storages and every field's value."""
    return str(
        page.evaluate(
            "JSON.stringify([{...sessionStorage}, {...localStorage},"
            " [...document.querySelectorAll('input, textarea')].map((i) => i.value)])"
        )
    )


def test_keys_page_as_a_global_admin(browser: Any, console_server: Server) -> None:
    srv = console_server
    tab = Tab(browser, srv, permissions=["clipboard-read", "clipboard-write"])
    try:
        page = tab.sign_in()
        page.get_by_role("link", name="Keys & usage").click()
        page.get_by_role("heading", name="Keys & usage").wait_for()
        # A key of another tenant, with two scopes and a limit, made with the form.
        page.get_by_label("Name", exact=True).fill("shop")
        page.get_by_label("metrics").check()
        form = page.locator("form", has=page.get_by_role("heading", name="New key"))
        form.get_by_label("Tenant").fill("acme")
        form.get_by_text("Limits (optional)").click()
        form.get_by_label("Requests per minute").fill("60")
        form.get_by_role("button", name="Create key").click()
        secret_box = page.get_by_label("Secret", exact=True)
        secret_box.wait_for()
        secret = secret_box.input_value()
        SESSION.add_secret(secret, "key made in the console")
        assert secret.startswith("bk_")
        expect(page.get_by_role("alert")).to_contain_text("only time it is shown")
        # The form is ready for the next key, with the default scope.
        expect(page.get_by_label("Name", exact=True)).to_have_value("")
        expect(page.get_by_label("inference")).to_be_checked()
        expect(page.get_by_label("metrics")).not_to_be_checked()
        me = api(srv, "GET", "/whoami", secret).json()
        assert (me["name"], me["tenant"], me["scopes"]) == (
            "shop",
            "acme",
            ["inference", "metrics"],
        )
        record = api(srv, "GET", f"/admin/keys/{me['id']}").json()
        assert (record["requests_per_minute"], record["tokens_per_day"]) == (60, None)
        page.get_by_role("button", name="Copy").click()
        page.get_by_text("Copied to the clipboard.").wait_for()
        assert page.evaluate("navigator.clipboard.readText()") == secret
        page.evaluate("navigator.clipboard.writeText('')")
        row = key_row(page, "shop")
        expect(row).to_contain_text("acme")
        expect(row).to_contain_text("60/min")
        assert secret not in row.inner_text()
        tab.shot("keys-secret")
        # Hidden, then after a reload: the secret is nowhere, not in the page nor the storage.
        page.get_by_role("button", name="I have stored it").click()
        assert page.locator("input.code").count() == 0 and secret not in held(page)
        page.reload()
        key_row(page, "shop").wait_for()
        assert secret not in page.content() and secret not in held(page)
        assert secret[8:] not in page.content()

        # Its limits, changed in the page, are the API's.
        key_row(page, "shop").get_by_role("button", name="Limits shop").click()
        editor = page.locator("form", has=page.get_by_role("heading", name="Limits of shop"))
        expect(editor.get_by_label("Requests per minute")).to_have_value("60")
        editor.get_by_label("Requests per minute").fill("120")
        editor.get_by_label("Tokens per day").fill("5000")
        editor.get_by_role("button", name="Save").click()
        page.get_by_text("Limits saved").wait_for()
        expect(key_row(page, "shop")).to_contain_text("120/min")
        # The keyboard is back on the key's row; Escape closes the editor unsaved.
        active = "document.activeElement.getAttribute('aria-label')"
        assert page.evaluate(active) == "Limits shop"
        page.keyboard.press("Enter")
        editor.get_by_label("Requests per minute").fill("7")
        page.keyboard.press("Escape")
        expect(editor).to_be_hidden()
        assert page.evaluate(active) == "Limits shop"
        record = api(srv, "GET", f"/admin/keys/{me['id']}").json()
        assert [record[k] for k in ("requests_per_minute", "tokens_per_day", "parallel")] == [
            120,
            5000,
            None,
        ]

        # Its usage: per key and per day, in bars and tables, and as the API's CSV.
        use(srv, secret)
        page.get_by_role("button", name="Show", exact=True).click()
        per_key = page.get_by_role("region", name="Tokens per key", exact=True)
        expect(per_key.get_by_role("cell", name="shop", exact=True)).to_be_visible()
        expect(page.locator("dd[data-name='tokens']")).not_to_have_text("0")
        charts = page.locator("figure.usage-chart svg")
        expect(charts).to_have_count(2)
        assert page.locator("figure.usage-chart svg rect.bar").count() >= 14 + 1
        tip = charts.nth(1).locator("title").filter(has_text=re.compile(r"^shop: "))
        expect(tip).to_have_count(1)
        with page.expect_download() as download:
            page.get_by_role("button", name="Download CSV").click()
        rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
        assert any(r["key_name"] == "shop" and int(r["total_tokens"]) > 0 for r in rows)
        tab.shot("keys")

        # Rotated: a new secret shown once, the old one refused.
        page.once("dialog", lambda dialog: dialog.accept())
        key_row(page, "shop").get_by_role("button", name="Rotate shop").click()
        rotated_box = page.get_by_label("Secret", exact=True)
        expect(rotated_box).not_to_have_value(secret)
        rotated = rotated_box.input_value()
        SESSION.add_secret(rotated, "key rotated in the console")
        assert rotated.startswith("bk_")
        assert api(srv, "GET", "/api/tags", secret).status_code == 401
        assert api(srv, "GET", "/api/tags", rotated).status_code == 200
        page.get_by_role("button", name="I have stored it").click()

        # Revoked (after a confirmation): the API refuses it.
        asked: list[str] = []

        def confirm(dialog: Any) -> None:
            asked.append(dialog.message)
            dialog.accept()

        page.once("dialog", confirm)
        key_row(page, "shop").get_by_role("button", name="Revoke shop").click()
        expect(key_row(page, "shop")).to_contain_text("revoked")
        assert asked and "Revoke this key" in asked[0] and "shop" in asked[0]
        assert key_row(page, "shop").get_by_role("button").count() == 0
        refused = api(srv, "GET", "/api/tags", rotated)
        assert refused.status_code == 401 and "revoked" in refused.json()["error"]

        # The tenant filter: only acme's keys.
        page.get_by_label("Tenant", exact=True).first.fill("acme")
        page.get_by_role("button", name="Apply").click()
        tenants = page.locator("table.keys tbody tr td:nth-child(3)")
        expect(tenants.first).to_have_text("acme")
        assert set(tenants.all_inner_texts()) == {"acme"}
        assert page.evaluate("window.__pwned") is None
    finally:
        tab.close()


def test_a_tenant_admin_sees_only_its_tenant(browser: Any, console_server: Server) -> None:
    srv = console_server
    t1_admin = made_key(srv, name="t1-admin", tenant="t1", scopes=["admin"])
    t1_shop = made_key(srv, name="t1-shop", tenant="t1")
    other = made_key(srv, name="t2-shop", tenant="t2")
    tab = Tab(browser, srv)
    try:
        page = tab.sign_in(t1_admin["key"])
        page.get_by_role("link", name="Keys & usage").click()
        key_row(page, "t1-shop").wait_for()
        assert key_row(page, "t2-shop").count() == 0
        tenants = page.locator("table.keys tbody tr td:nth-child(3)")
        assert set(tenants.all_inner_texts()) == {"t1"}
        # No tenant to pick: neither a filter nor a tenant for new keys.
        assert page.get_by_label("Tenant", exact=True).count() == 0
        # Another tenant's key, asked with this tab's key: a missing one; its tenant: refused.
        statuses = page.evaluate(
            """async (id) => {
                const auth = {Authorization: `Bearer ${sessionStorage.getItem("billumy.key")}`};
                const one = await fetch(`/admin/keys/${id}`, {headers: auth});
                const theirs = await fetch("/admin/keys?tenant=t2", {headers: auth});
                const revoke = await fetch(
                    `/admin/keys/${id}/revoke`, {method: "POST", headers: auth}
                );
                return [one.status, theirs.status, revoke.status];
            }""",
            other["id"],
        )
        assert statuses == [404, 403, 404]
        assert api(srv, "GET", "/api/tags", other["key"]).status_code == 200
        # A key it makes (by keyboard: Enter in the name sends the form) is of its tenant, and
        # the keyboard lands on its secret.
        page.get_by_label("Name", exact=True).focus()
        page.keyboard.type("t1-new")
        page.keyboard.press("Enter")
        made = page.get_by_label("Secret", exact=True)
        made.wait_for()
        assert page.evaluate("document.activeElement === document.querySelector('input.code')")
        SESSION.add_secret(made.input_value(), "key made in the console")
        assert api(srv, "GET", "/whoami", made.input_value()).json()["tenant"] == "t1"
        expect(key_row(page, "t1-new")).to_contain_text("t1")
        # Its usage shows its tenant's keys only.
        use(srv, t1_shop["key"])
        use(srv, other["key"])
        page.get_by_role("button", name="Show", exact=True).click()
        per_key = page.get_by_role("region", name="Tokens per key", exact=True)
        expect(per_key.get_by_role("cell", name="t1-shop", exact=True)).to_be_visible()
        assert per_key.get_by_role("cell", name="t2-shop").count() == 0
        tab.shot("keys-tenant-admin")
    finally:
        tab.close()


def test_an_inference_key_does_not_see_the_keys_page(browser: Any, console_server: Server) -> None:
    reader = made_key(console_server, name="reader-only", tenant="t1")
    tab = Tab(browser, console_server)
    try:
        page = tab.sign_in(reader["key"])
        nav = page.get_by_role("navigation")
        expect(nav.get_by_role("link", name="Conversations")).to_be_visible()
        assert nav.get_by_role("link", name="Keys & usage").count() == 0
        # Asked for by its address, the page is the Playground instead.
        page.goto(console_server.url + "/console#/keys")
        page.get_by_label("Model or persona").wait_for()
        assert page.locator("table.keys, #keys-title").count() == 0
        assert page.title().startswith("Playground")
    finally:
        tab.close()


def test_key_names_holding_markup_render_as_text(tab: Tab) -> None:
    srv = tab.server
    hostile = made_key(srv, name=SCRIPT, tenant="hostile")
    made_key(srv, name=IMG, tenant="hostile")
    use(srv, hostile["key"])
    page = tab.sign_in()
    page.get_by_role("link", name="Keys & usage").click()
    page.get_by_label("Tenant", exact=True).first.fill("hostile")
    page.get_by_role("button", name="Apply").click()
    key_row(page, SCRIPT).wait_for()
    assert key_row(page, IMG).count() == 1
    per_key = page.get_by_role("region", name="Tokens per key", exact=True)
    expect(per_key.get_by_role("cell", name=SCRIPT, exact=True)).to_be_visible()
    expect(page.locator("figure.usage-chart svg title", has_text=SCRIPT)).to_have_count(1)
    page.get_by_role("option", name=SCRIPT, exact=False).first.wait_for(state="attached")
    assert page.locator("main script, main img").count() == 0
    page.wait_for_timeout(200)  # an onerror would have fired by now
    assert page.evaluate("window.__pwned") is None
    tab.shot("keys-hostile-names")


def test_phone_and_portuguese(browser: Any, console_server: Server) -> None:
    phone = Tab(
        browser,
        console_server,
        locale="pt-BR",
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
    )
    try:
        page = phone.page
        page.goto(console_server.url + "/console")
        page.get_by_label("Chave de API").fill(console_server.api_key or "")
        page.get_by_role("button", name="Entrar").click()
        page.get_by_role("link", name="Conversas").wait_for()
        assert page.evaluate("document.documentElement.lang") == "pt-BR"
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        phone.shot("playground-phone-pt-BR")
        page.get_by_role("link", name="Chaves e uso").click()
        page.get_by_role("heading", name="Nova chave").wait_for()
        page.get_by_role("region", name="Chaves", exact=True).wait_for()
        page.get_by_role("button", name="Mostrar", exact=True).wait_for()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        phone.shot("keys-phone-pt-BR")
        page.get_by_label("Idioma").select_option("en")
        page.get_by_role("link", name="Conversations").wait_for()
        assert page.evaluate("document.documentElement.lang") == "en"
    finally:
        phone.close()


def test_server_page_shows_upstream_circuits(
    browser: Any, make_server: type[Server], tmp_path: Path
) -> None:
    """A deployment whose server is gone: its circuit opens on the health checks, and the
    page, refreshing, shows it open."""
    gateway = make_server(data_dir=tmp_path / "gateway")
    gateway.data_dir.mkdir(parents=True)
    (gateway.data_dir / "billumy.toml").write_text(
        f"""
health_interval = 0.5
breaker_failures = 1

[[deployments]]
name = "gone-a"
model = "far"
provider = "ollama"
url = "http://127.0.0.1:{free_port()}"
"""
    )
    gateway.start()
    tab = Tab(browser, gateway)
    try:
        page = tab.sign_in()
        page.get_by_role("link", name="Server").click()
        row = page.locator("tr", has=page.get_by_role("cell", name="gone-a", exact=True))
        expect(row).to_contain_text("far")
        expect(row.locator("td").nth(2)).to_have_text("open", timeout=30_000)
        tab.shot("server-upstreams")
    finally:
        tab.close()
