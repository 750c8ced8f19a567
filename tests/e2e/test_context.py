"""Context control: long conversations keep working, with a summary and the newest turns."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.server import RedisServer, Server

SMALL = {"num_ctx": 512, "num_predict": 16, "temperature": 0, "seed": 1}


def _long_chat(c: httpx.Client, turns: int = 20) -> str:
    history: list[dict[str, str]] = []
    for i in range(turns):
        history.append(
            {"role": "user", "content": f"Pergunta {i}: as vendas da loja {i} " + "subiram " * 25}
        )
        history.append({"role": "assistant", "content": f"Resposta {i}: " + "anotado " * 25})
    r = c.post("/chats", json={"user_id": "ctx", "model": "smollm2-135m", "messages": history})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _context(c: httpx.Client, cid: str) -> dict[str, Any]:
    r = c.get(f"/chats/{cid}/context", params={"num_ctx": 512, "num_predict": 16})
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_long_conversation_gets_a_summary_and_the_latest_turns(server: Server) -> None:
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=120) as c:
        cid = _long_chat(c)
        before = _context(c, cid)
        assert before["summary"] is None
        assert before["tokens"] <= before["budget"] < 512
        assert before["first_seq"] > 1  # the oldest turns do not fit
        r = c.post(
            f"/chats/{cid}/messages",
            json={"content": "E qual loja vendeu mais?", "stream": False, "options": SMALL},
        )
        assert r.status_code == 200, r.text
        assert r.json()["prompt_eval_count"] < 512
        # The turns that fell out are summarised in the background, then stored.
        deadline = time.monotonic() + 90
        ctx = _context(c, cid)
        while ctx["summary"] is None and time.monotonic() < deadline:
            time.sleep(0.5)
            ctx = _context(c, cid)
        assert ctx["summary"], "no summary was made"
        first = ctx["messages"][0]
        assert first["role"] == "system" and first["content"].startswith("Summary of the earlier")
        assert ctx["summary"] in first["content"]
        # ...followed by the newest turns, ending with the latest exchange.
        assert ctx["messages"][-2]["content"] == "E qual loja vendeu mais?"
        assert ctx["messages"][-1]["role"] == "assistant"
        assert ctx["tokens"] <= ctx["budget"]
        r = c.post(
            f"/chats/{cid}/messages",
            json={"content": "Obrigado!", "stream": False, "options": SMALL},
        )
        assert r.status_code == 200
        assert c.get(f"/chats/{cid}").json()["message_count"] == 44


def test_hot_window_lives_in_redis_and_serves_other_processes(
    make_server: type[Server], tmp_path: Path, redis_server: RedisServer
) -> None:
    env = {"BILLUMY_REDIS_URL": redis_server.url}
    a = make_server(data_dir=tmp_path / "w", env=env).start()
    b = make_server(data_dir=tmp_path / "w", env=env).start()
    with (
        httpx.Client(base_url=a.url, headers=a.headers, timeout=120) as ca,
        httpx.Client(base_url=b.url, headers=b.headers, timeout=120) as cb,
    ):
        cid = _long_chat(ca, turns=4)
        r = ca.post(
            f"/chats/{cid}/messages", json={"content": "Resuma.", "stream": False, "options": SMALL}
        )
        assert r.status_code == 200
        window = subprocess.run(
            ["redis-cli", "-p", str(redis_server.port), "LRANGE", f"billumy:win:{cid}", "0", "-1"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "Resuma." in window
        assert window.count('"seq"') == 10  # 8 turns, the question and the reply
        assert _context(ca, cid)["messages"] == _context(cb, cid)["messages"]
        r = cb.post(
            f"/chats/{cid}/messages",
            json={"content": "E depois?", "stream": False, "options": SMALL},
        )
        assert r.status_code == 200
        assert _context(ca, cid)["messages"][-2]["content"] == "E depois?"
