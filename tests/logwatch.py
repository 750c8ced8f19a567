"""Watchers that feed the log scan (``tests/logscan.py``) without the tests' help.

Each ``watch_*`` function installs itself and returns the function that undoes it. They only
look: the wrapped call runs as before, and a watcher that fails to understand what it saw lets
it pass (every look is inside ``try``), so no test can fail because of them.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from billumy.logs import JSONFormatter
from tests.logscan import KEY_PATTERN, Log, LogScan

# Request fields that carry prompt text, across the Ollama, OpenAI, chats and insights APIs.
PROMPT_FIELDS = ("prompt", "system", "suffix", "content", "input", "question")
MAX_BODY = 4 << 20


def current_test() -> str:
    return os.environ.get("PYTEST_CURRENT_TEST", "outside any test").split(" ")[0]


def _strings(value: object, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, list):
        for item in value:
            _strings(item, out)
    elif isinstance(value, dict):  # a content part, or a message given as ``input``
        _strings(value.get("text"), out)
        _strings(value.get("content"), out)


def prompt_texts(body: object) -> list[str]:
    """The prompt strings of a JSON request body."""
    if not isinstance(body, dict):
        return []
    out: list[str] = []
    for name in PROMPT_FIELDS:
        _strings(body.get(name), out)
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            _strings(message.get("content"), out)
    return out


def credential(authorization: str) -> str:
    """What an Authorization header carries: the part after the scheme, or all of it."""
    _, _, token = authorization.strip().partition(" ")
    return token.strip() or authorization.strip()


def _note_body(scan: LogScan, raw: bytes | str) -> None:
    if len(raw) > MAX_BODY or raw[:1] not in (b"{", "{"):
        return
    for text in prompt_texts(json.loads(raw)):
        scan.add_prompt(text)


def note_request(scan: LogScan, request: httpx.Request) -> None:
    with contextlib.suppress(Exception):  # looking must never break a request
        if auth := request.headers.get("authorization"):
            scan.add_secret(credential(auth), "Authorization credential")
        try:
            body = request.content  # only there when the body is not a stream
        except httpx.RequestNotRead:
            return
        _note_body(scan, body)


def watch_httpx(scan: LogScan) -> Callable[[], None]:
    """Note the credentials and prompts of every request made with httpx (the official ollama,
    openai and LangChain clients use it too)."""
    sync_send, async_send = httpx.Client.send, httpx.AsyncClient.send

    @functools.wraps(sync_send)
    def send(self: httpx.Client, request: httpx.Request, *args: Any, **kwargs: Any) -> Any:
        note_request(scan, request)
        return sync_send(self, request, *args, **kwargs)

    @functools.wraps(async_send)
    async def asend(
        self: httpx.AsyncClient, request: httpx.Request, *args: Any, **kwargs: Any
    ) -> Any:
        note_request(scan, request)
        return await async_send(self, request, *args, **kwargs)

    httpx.Client.send = send  # type: ignore[method-assign]
    httpx.AsyncClient.send = asend  # type: ignore[method-assign]

    def undo() -> None:
        httpx.Client.send = sync_send  # type: ignore[method-assign]
        httpx.AsyncClient.send = async_send  # type: ignore[method-assign]

    return undo


def watch_aiohttp(scan: LogScan) -> Callable[[], None]:
    """Note the credential of every aiohttp session (the upstream engines' client): it rides
    in the session's default headers."""
    try:
        import aiohttp
    except ImportError:
        return lambda: None
    original = aiohttp.ClientSession.__init__

    @functools.wraps(original)
    def init(self: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        with contextlib.suppress(Exception):  # looking must never break a session
            if auth := self.headers.get("Authorization"):
                scan.add_secret(credential(auth), "Authorization credential")

    aiohttp.ClientSession.__init__ = init  # type: ignore[method-assign]

    def undo() -> None:
        aiohttp.ClientSession.__init__ = original  # type: ignore[method-assign]

    return undo


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value if isinstance(value, str) else ""


def _note_curl(scan: LogScan, argv: list[str]) -> None:
    for option, value in itertools.pairwise(argv):
        if option in ("-H", "--header") and value.lower().startswith("authorization:"):
            scan.add_secret(credential(value.partition(":")[2]), "Authorization credential")
        elif option in ("-d", "--data", "--data-raw", "--data-binary", "--json"):
            with contextlib.suppress(ValueError):
                _note_body(scan, value)


def _note_billumy(scan: LogScan, argv: list[str], kwargs: dict[str, Any]) -> None:
    for option, value in itertools.pairwise(argv):
        if option == "--key":
            scan.add_secret(value, "key given to the CLI")
    env = kwargs.get("env") or {}
    scan.add_secret(env.get("BILLUMY_API_KEY"), "admin key")
    if argv[1:2] == ["chat"]:
        for line in _text(kwargs.get("input")).splitlines():
            if not line.startswith("/"):
                scan.add_prompt(line)


def _note_result(scan: LogScan, argv: list[str], stdout: object, stderr: object) -> None:
    if Path(argv[0]).name != "billumy":
        return
    with contextlib.suppress(Exception):  # looking must never break a command
        out = _text(stdout).strip()
        if argv[1:3] == ["keys", "create"] and KEY_PATTERN.fullmatch(out):
            scan.add_secret(out, "created key")
        if stderr is not None:  # captured: the command's log, to scan with the servers'
            name = f"`billumy {' '.join(argv[1:3])}` stderr in {current_test()}"
            scan.add_log(Log(name, text=_text(stderr), source="billumy CLI stderr"))


def watch_subprocess(scan: LogScan) -> Callable[[], None]:
    """Note the keys and prompts that ``billumy`` and ``curl`` commands run with
    ``subprocess.run`` carry, the keys ``billumy keys create`` prints, and the stderr of
    ``billumy`` commands as a log."""
    original = subprocess.run

    @functools.wraps(original)
    def run(*popenargs: Any, **kwargs: Any) -> Any:
        argv: list[str] = []
        try:
            args = popenargs[0] if popenargs else kwargs.get("args")
            if isinstance(args, list | tuple):
                argv = [str(a) for a in args]
            tool = Path(argv[0]).name if argv else ""
            if tool == "curl":
                _note_curl(scan, argv)
            elif tool == "billumy":
                _note_billumy(scan, argv, kwargs)
            else:
                argv = []
        except Exception:  # looking must never break a command
            argv = []
        try:
            result = original(*popenargs, **kwargs)
        except subprocess.CalledProcessError as exc:
            if argv:
                _note_result(scan, argv, exc.stdout, exc.stderr)
            raise
        if argv:
            _note_result(scan, argv, result.stdout, result.stderr)
        return result

    subprocess.run = run

    def undo() -> None:
        subprocess.run = original

    return undo


class _Recorder(logging.Handler):
    """Keeps, as Billumy would write them, the log records emitted in this process."""

    def __init__(self, scan: LogScan) -> None:
        super().__init__()
        self.scan = scan
        self.setFormatter(JSONFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # logging must never break a test
            name = f"in-process logging in {current_test()}"
            self.scan.append(name, self.format(record), source="in-process logging")


def watch_logging(scan: LogScan) -> Callable[[], None]:
    """Keep the records that reach the root logger (at the levels the tests let through)."""
    handler = _Recorder(scan)
    root = logging.getLogger()
    root.addHandler(handler)

    def undo() -> None:
        root.removeHandler(handler)

    return undo
