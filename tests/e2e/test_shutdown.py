"""SIGTERM while a reply streams: the stream ends with an in-band error line, the process
exits, and the conversation store holds the reply as far as it went, marked incomplete."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx

from tests.e2e.server import Server


def test_sigterm_during_a_stream(make_server: type[Server], tmp_path: Path) -> None:
    # No grace period: the stream must end at its next chunk after the signal.
    srv = make_server(data_dir=tmp_path / "srv", env={"BILLUMY_SHUTDOWN_GRACE": "0"}).start()
    assert srv.proc is not None
    with httpx.Client(base_url=srv.url, headers=srv.headers, timeout=60) as client:
        chat = client.post("/chats", json={"user_id": "ops", "model": "smollm2-135m"})
        assert chat.status_code == 201, chat.text
        chat_id = chat.json()["id"]
        body = {
            "content": "Count from 1 to 5000, separated by commas: 1, 2, 3,",
            "options": {"num_predict": 3000, "temperature": 0, "seed": 1},
        }
        with client.stream("POST", f"/chats/{chat_id}/messages", json=body) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            first = json.loads(next(lines))
            assert not first["done"]
            srv.proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            rest = [json.loads(x) for x in lines if x.strip()]
        ended = time.monotonic() - signalled
    assert rest, "the stream ended without a last line"
    last = rest[-1]
    assert "shutting down" in last.get("error", ""), last
    assert ended < 10
    pieces = [first["message"]["content"]] + [r["message"]["content"] for r in rest[:-1]]
    srv.proc.wait(timeout=60)
    srv.proc = None
    # Started again on the same database: the reply is there as far as it went.
    srv.start()
    with httpx.Client(base_url=srv.url, headers=srv.headers, timeout=60) as client:
        stored = client.get(f"/chats/{chat_id}").json()
    messages = stored["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert stored["message_count"] == 2
    reply = messages[1]
    assert reply["incomplete"] is True
    assert reply["content"].startswith("".join(pieces))
