"""The end-of-session log scan (tests/logscan.py) and what feeds it (tests/logwatch.py)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.logscan import PROMPT, Log, LogScan, scan_text
from tests.logwatch import (
    credential,
    note_request,
    prompt_texts,
    watch_aiohttp,
    watch_subprocess,
)

KEY = "bk_" + "Zq3" * 14 + "x"  # the shape of a real key: bk_ and 43 url-safe characters
PROMPT_TEXT = "Describe the harbour of Recife in three lines"


def _line(msg: str, **extra: object) -> str:
    """A line as billumy.logs writes it (orjson: non-ASCII characters unescaped)."""
    record = {"ts": "2025-01-01T00:00:00", "level": "info", "msg": msg, **extra}
    return json.dumps(record, ensure_ascii=False)


def _scan() -> LogScan:
    scan = LogScan()
    scan.add_secret(KEY, "admin key")
    scan.add_prompt(PROMPT_TEXT)
    return scan


def test_a_key_and_a_prompt_in_a_log_are_found(tmp_path: Path) -> None:
    path = tmp_path / "server.log"
    path.write_text(
        "\n".join(
            [
                _line("request", path="/api/generate", status=200),
                _line("auth failed", authorization=f"Bearer {KEY}"),
                _line("prompt", prompt=PROMPT_TEXT[:60] + "\n(cut)"),
            ]
        )
    )
    scan = _scan()
    scan.add_log(Log("server", path))
    findings = scan.scan()
    assert [(f.line, f.kind) for f in findings] == [(2, "admin key"), (3, PROMPT)]
    report = "\n".join(map(str, findings))
    assert KEY not in report and PROMPT_TEXT not in report  # the report shows a prefix only
    assert "bk_Zq3" in report and "<redacted>" in report


def test_a_clean_log_passes(tmp_path: Path) -> None:
    path = tmp_path / "server.log"
    path.write_text(
        "\n".join(
            [
                _line("Billumy listening", port=8011),
                _line("request", key_name="admin", prefix=KEY[:8], status=401),
                _line("prompt", prompt="Say hi"),  # too short to tell from other text
            ]
        )
    )
    scan = _scan()
    scan.add_log(Log("server", path))
    assert scan.scan() == []


def test_keys_and_url_passwords_are_found_by_their_shape() -> None:
    text = "\n".join(
        [
            _line("key", key="bk_never-registered-0123456789abc"),
            _line("upstream", headers={"authorization": "Bearer sk-proj-0123456789abcdef"}),
            _line("redis down", url="redis://:hunter2-pass@10.0.0.5:6379/0"),
            _line("database", url="postgresql://postgres@127.0.0.1:5432/test"),  # no password
        ]
    )
    kinds = [(f.line, f.kind) for f in scan_text("log", text, {})]
    assert kinds == [
        (1, "key (by its shape)"),
        (2, "upstream key (by its shape)"),
        (3, "URL password"),
    ]


def test_log_prompts_allows_prompts_but_never_keys(tmp_path: Path) -> None:
    path = tmp_path / "server.log"
    path.write_text("\n".join([_line("prompt", prompt=PROMPT_TEXT), _line("oops", key=KEY)]) + "\n")
    scan = _scan()
    scan.add_log(Log("log_prompts server", path, allow_prompts=True))
    assert [(f.line, f.kind) for f in scan.scan()] == [(2, "admin key")]
    assert scan.allowed == 1  # the prompt was there, and let pass


def test_the_admin_key_printed_on_first_start_is_allowed_once() -> None:
    text = f"Billumy listening\n{KEY}\n" + _line("started") + f"\n{KEY}\n"
    secrets = {KEY: "Authorization credential"}
    assert [f.line for f in scan_text("log", text, secrets, prints_admin_key=True)] == [4]
    assert [f.line for f in scan_text("log", text, secrets)] == [2, 4]


def test_json_escaped_prompts_are_found() -> None:
    prompt = 'He said "olá"\nand left the harbour'
    text = _line("prompt", prompt=prompt) + "\n" + json.dumps({"p": prompt}, ensure_ascii=True)
    assert [f.line for f in scan_text("log", text, {}, [prompt])] == [1, 2]


def test_snapshot_outlives_the_file(tmp_path: Path) -> None:
    path = tmp_path / "server.log"
    path.write_text(_line("oops", key=KEY))
    log = Log("server", path)
    log.snapshot()
    path.unlink()
    assert KEY in log.read()


def test_prompt_texts_of_the_apis() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "a chat message"},
            {"role": "user", "content": [{"type": "text", "text": "a content part"}]},
        ],
        "prompt": "a prompt",
        "input": ["one", "two"],
        "question": "a question",
        "options": {"num_predict": 4},
    }
    assert sorted(prompt_texts(body)) == sorted(
        ["a chat message", "a content part", "a prompt", "one", "two", "a question"]
    )
    assert credential(f"Bearer {KEY}") == KEY and credential("bk_only-the-key") == "bk_only-the-key"


def test_note_request_reads_json_bodies_and_leaves_streams_alone() -> None:
    scan = LogScan()
    sent = httpx.Request(
        "POST",
        "http://x/api/generate",
        json={"prompt": PROMPT_TEXT},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    note_request(scan, sent)
    assert scan.secrets == {KEY: "Authorization credential"} and scan.prompts == {PROMPT_TEXT}
    streamed = httpx.Request(
        "POST", "http://x/", content=iter([b'{"prompt": "never read at all"}'])
    )
    note_request(scan, streamed)
    assert scan.prompts == {PROMPT_TEXT}
    assert list(streamed.stream) == [b'{"prompt": "never read at all"}']  # still to be sent


def test_watch_subprocess_keeps_behaviour_and_notes_billumy_commands(tmp_path: Path) -> None:
    billumy = tmp_path / "billumy"  # a stand-in that prints a key, as `keys create` does
    billumy.write_text(
        f"#!{sys.executable}\nimport sys\nprint({KEY!r})\nsys.stderr.write('created\\n')\n"
    )
    billumy.chmod(0o755)
    scan = LogScan()
    undo = watch_subprocess(scan)
    try:
        out = subprocess.run(
            [str(billumy), "keys", "create", "--name", "x"],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        undo()
    assert out.stdout == KEY + "\n" and out.stderr == "created\n"
    assert scan.secrets == {KEY: "created key"}
    [log] = scan.logs.values()
    assert log.text == "created\n" and log.name.startswith("`billumy keys create` stderr")


def test_watch_aiohttp_notes_the_session_credential() -> None:
    aiohttp = pytest.importorskip("aiohttp")
    scan = LogScan()
    undo = watch_aiohttp(scan)

    async def main() -> None:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as session:
            assert session.headers["Authorization"] == f"Bearer {KEY}"

    try:
        asyncio.run(main())
    finally:
        undo()
    assert scan.secrets == {KEY: "Authorization credential"}
