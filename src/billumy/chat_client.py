"""The interactive terminal chat behind ``billumy chat``: streams /api/chat over HTTP."""

from __future__ import annotations

import sys
from typing import Any

import httpx
import orjson
from rich.console import Console


def run_chat(
    *, host: str, key: str | None, model: str, num_predict: int | None, console: Console
) -> int:
    """Read lines from stdin, stream each reply; returns the exit status."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    history: list[dict[str, str]] = []
    interactive = sys.stdin.isatty()
    if interactive:
        console.print(
            f"[bold]Chatting with {model}[/bold] at {host}. /reset starts over, /exit quits."
        )
    with httpx.Client(
        base_url=host, headers=headers, timeout=httpx.Timeout(10.0, read=600.0)
    ) as client:
        while True:
            if interactive:
                console.print("[bold cyan]>>> [/bold cyan]", end="")
            line = sys.stdin.readline()
            if not line:
                return 0
            text = line.strip()
            if not text:
                continue
            if text in ("/exit", "/quit", "/bye"):
                return 0
            if text == "/reset":
                history.clear()
                console.print("[dim](conversation reset)[/dim]")
                continue
            history.append({"role": "user", "content": text})
            reply = _stream(client, model, history, num_predict, console)
            if reply is None:
                history.pop()
                if not interactive:
                    return 1
                continue
            history.append({"role": "assistant", "content": reply})


def _stream(
    client: httpx.Client,
    model: str,
    history: list[dict[str, str]],
    num_predict: int | None,
    console: Console,
) -> str | None:
    body: dict[str, Any] = {"model": model, "messages": history, "stream": True}
    if num_predict is not None:
        body["options"] = {"num_predict": num_predict}
    parts: list[str] = []
    try:
        with client.stream("POST", "/api/chat", json=body) as response:
            if response.status_code != 200:
                response.read()
                console.print(
                    f"[red]error {response.status_code}:[/red] {_error(response.content)}"
                )
                return None
            for raw in response.iter_lines():
                if not raw:
                    continue
                chunk = orjson.loads(raw)
                if "error" in chunk:
                    console.print(f"\n[red]error:[/red] {chunk['error']}")
                    return None
                piece = chunk.get("message", {}).get("content", "")
                parts.append(piece)
                console.print(piece, end="", markup=False, highlight=False, soft_wrap=True)
                if chunk.get("done"):
                    break
    except httpx.HTTPError as exc:
        console.print(f"[red]cannot reach {client.base_url}:[/red] {exc}")
        return None
    console.print()
    return "".join(parts)


def _error(content: bytes) -> str:
    try:
        return str(orjson.loads(content).get("error", content.decode(errors="replace")))
    except orjson.JSONDecodeError:
        return content.decode(errors="replace")
