"""Every reported attack, sent again and again while another tenant keeps using the server.

For each: the attack's answers have the status it must get (a 4xx naming what is wrong, or a
200 where the request is served within bounds; never a 500), each came within its time, and
the other tenant's ordinary requests sent while the attack ran were answered within their
usual time: their p95 within 1.5 times their p95 alone (plus 250 ms of scheduling noise on a
shared machine) and their median within 1.5 times their median alone (plus 50 ms) for an
attack that is refused; for one the engine serves (one generation slot per model), that
plus the attack's own time, which is what waiting behind any other tenant's request of that
size costs.

The other files of this package check each case's message and result; this one checks that
none of them takes the server from the others while it runs.
"""

from __future__ import annotations

import io
import re
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.hostile.conftest import ORDINARY, Hostile

MODEL = "billumy"
GENERATE = {"model": MODEL, "prompt": "Oi", "stream": False, "options": {"num_predict": 2}}
MiB = 1024 * 1024
WINDOW_S = 1.2  # an attack is sent again until this long has passed (and at least once)
PAUSE_S = 0.1  # between two sends: the attacker's key stays under its requests per minute
MAX_SENDS = 8
# Scheduling noise of a machine whose two cores other work shares (a load average of 6 to 8
# while these ran): a p95 of 60 ms alone read 200 ms in the next second with only a stream
# of trivial 400s beside it. The median below is held to 50 ms of it.
NOISE_S = 0.25


def _generate(**fields: Any) -> Callable[[Hostile], httpx.Response]:
    body = {**GENERATE, **fields}
    return lambda h: h.attacker.post("/api/generate", json=body)


def _chat(messages: list[dict[str, str]]) -> Callable[[Hostile], httpx.Response]:
    body = {
        "model": "smollm2-135m",
        "messages": messages,
        "stream": False,
        "options": {"num_ctx": 256, "num_predict": 2, "temperature": 0},
    }
    return lambda h: h.attacker.post("/api/chat", json=body)


def _parquet_bomb() -> bytes:
    column = pa.array(["x" * 999 + "!"] * 1_000_000).dictionary_encode()
    out = io.BytesIO()
    pq.write_table(pa.table({"s": column}), out, compression="zstd")
    return out.getvalue()


def _upload(content: bytes, name: str) -> Callable[[Hostile], httpx.Response]:
    return lambda h: h.attacker.post("/datasets", files={"file": (name, content, "x/y")})


# 30 MiB of empty records: ten million dicts (600 MB and more) had the body been parsed; and a
# third of it, sent again and again.
JSON_BOMB = b'{"question": "total?", "narrative": false, "data": [' + b"{}," * (10 * MiB) + b"{}]}"
SMALL_JSON_BOMB = JSON_BOMB[: 40 + 3 * 3 * MiB] + b"{}]}"
UNUSUAL = ['a"b', "select", "back\\slash", 'q"uo\\"te', 'a"; DROP TABLE data; --']
PASSWD = {
    "question": "SELECT * FROM read_csv('/etc/passwd')",
    "narrative": False,
    "data": [
        {n: (i if k else ["Sul", "Norte"][i % 2]) for k, n in enumerate(UNUSUAL)} for i in range(40)
    ],
}


@dataclass
class Attack:
    name: str
    send: Callable[[Hostile], httpx.Response]
    statuses: tuple[int, ...]
    seconds: float  # the most one answer may take
    words: str = ""  # in the error, when refused


ATTACKS = [
    # Requests that killed the engine process.
    Attack("empty-embedding", lambda h: h.attacker.post(
        "/api/embed", json={"model": MODEL, "input": ""}), (400,), 5, "nothing to embed"),
    Attack("enum-with-a-quote", _generate(
        format={"type": "string", "enum": ['a"b']}, options={"num_predict": 8}), (200,), 20),
    Attack("repetition-of-100000", _generate(
        format={"type": "string", "pattern": "^(a|b|c|d){1,100000}$"}), (400,), 5,
        "BILLUMY_MAX_SCHEMA_REPEAT"),
    # Requests that held the engine until a restart.
    Attack("keep-alive-1e308", _generate(keep_alive=1e308), (200,), 20),
    Attack("keep-alive-20-digit-hours", _generate(keep_alive="99999999999999999999h"), (200,), 20),
    Attack("ranges-60-deep", _generate(
        template="{{range $.Messages}}" * 60 + "x" + "{{end}}" * 60, system="Be brief."),
        (400,), 30, "steps"),
    Attack("chat-of-2000-long-messages", _chat(
        [{"role": "user", "content": f"{i} " + "y" * 96} for i in range(2000)]), (200,), 60),
    Attack("chat-of-20000-one-char-messages", _chat(
        [{"role": "user", "content": "z"} for _ in range(20_000)]), (200,), 60),
    Attack("prompt-x200-of-100-kb", _generate(
        template="{{.Prompt}}" * 200, prompt="p" * 100_000), (400,), 10),
    Attack("printf-9999-x2000", _generate(
        template='{{printf "%9999s" .Prompt}}' * 2000), (400,), 10),
    Attack("etc-passwd-on-unusual-columns", lambda h: h.attacker.post(
        "/api/insights", json=PASSWD), (200,), 120),
    # Server errors for bad input.
    Attack("context-minus-one", _generate(context=[-1]), (400,), 5, "not a token id"),
    Attack("context-out-of-vocabulary", _generate(context=[10**9]), (400,), 5, "not a token"),
    Attack("seed-2-to-the-64", _generate(options={"seed": 2**64}), (400,), 5, "seed"),
    Attack("chart-name-superscript", lambda h: h.attacker.get(
        "/api/insights/in_0123456789abcdef/charts/%C2%B2.svg"), (400,), 5, "charts"),
    Attack("nested-range-template", _generate(
        template="{{range .Messages}}{{range .Messages}}{{.Content}}{{end}}{{end}}"),
        (400,), 5, "prompt is empty"),
    # Amplification.
    Attack("parquet-bomb", _upload(_parquet_bomb(), "bomb.parquet"), (413,), 30,
        "once decompressed"),
    Attack("inline-json-bomb", lambda h: h.attacker.post(
        "/api/insights", content=SMALL_JSON_BOMB, headers={"content-type": "application/json"}),
        (413,), 15, "max_dataset_rows"),
    Attack("twenty-thousand-unknown-options", _generate(options={
        **{f"bogus_{i}": i for i in range(20_000)}, "num_ctx": 10**9}), (400,), 10, "num_ctx"),
    Attack("mirostat-7", _generate(options={"mirostat": 7}), (400,), 5, "mirostat"),
    Attack("mirostat-eta-1e9", _generate(options={"mirostat_eta": 1e9}), (400,), 5,
        "mirostat_eta"),
]  # fmt: skip


def _timed(send: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = send()
    return response, time.monotonic() - started


def _p95(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _ordinary(hostile: Hostile) -> httpx.Response:
    return hostile.neighbour.post("/api/generate", json=ORDINARY)


def _usual(hostile: Hostile) -> tuple[float, float]:
    """The other tenant's p95 and median alone, over 12 ordinary requests sent just before
    the attack (the machine's other work then weighs on both measures alike)."""
    times = []
    for _ in range(12):
        response, seconds = _timed(lambda: _ordinary(hostile))
        assert response.status_code == 200, response.text
        times.append(seconds)
    return _p95(times), statistics.median(times)


def _rss(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status)[1]) * 1024  # type: ignore[index]


def _under_attack(hostile: Hostile, attack: Attack) -> str | None:
    """One round: the other tenant alone, then beside the attack. Asserts the attack's
    answers; returns why the other tenant waited too long, or None."""
    usual, usual_median = _usual(hostile)
    answers: list[tuple[httpx.Response, float]] = []
    failure: list[BaseException] = []

    def attacker() -> None:
        started = time.monotonic()
        try:
            while not answers or (
                time.monotonic() - started < WINDOW_S and len(answers) < MAX_SENDS
            ):
                answers.append(_timed(lambda: attack.send(hostile)))
                time.sleep(PAUSE_S)
        except BaseException as exc:  # reported below, in the test's thread
            failure.append(exc)

    thread = threading.Thread(target=attacker)
    thread.start()
    time.sleep(0.02)  # the first attack is on its way
    neighbour: list[float] = []
    while thread.is_alive() or not neighbour:
        response, seconds = _timed(lambda: _ordinary(hostile))
        assert response.status_code == 200, response.text
        neighbour.append(seconds)
    thread.join()
    assert not failure, failure
    statuses = [r.status_code for r, _ in answers]
    slowest = max(s for _, s in answers)
    print(
        f"{attack.name}: {len(answers)} sent, statuses {sorted(set(statuses))}, slowest "
        f"{slowest:.2f}s; other tenant: {len(neighbour)} answered, p95 "
        f"{_p95(neighbour):.3f}s, slowest {max(neighbour):.3f}s (p95 alone {usual:.3f}s)"
    )
    for response, seconds in answers:
        assert response.status_code in attack.statuses, (response.status_code, response.text)
        assert seconds < attack.seconds, (attack.name, seconds)
        if response.status_code >= 400 and attack.words:
            error = response.json()["error"]
            assert attack.words in (error if isinstance(error, str) else error["message"])
    # What the other tenant may wait: nothing more than usual while a refused attack runs; the
    # one generation ahead of it while a served one does.
    served = max((s for r, s in answers if r.status_code == 200), default=0.0)
    allowed = 1.5 * usual + NOISE_S + served
    if _p95(neighbour) > allowed:
        return f"p95 {_p95(neighbour):.3f}s > {allowed:.3f}s: {sorted(neighbour)}"
    # And the median, which the machine's hiccups move less: a refused attack that cost the
    # engine even a tenth of a second each time shows here.
    typical = 1.5 * usual_median + 0.05
    if not served and statistics.median(neighbour) > typical:
        return f"median {statistics.median(neighbour):.3f}s > {typical:.3f}s: {sorted(neighbour)}"
    return None


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_the_attack_is_answered_in_time_and_the_other_tenant_meanwhile(
    hostile: Hostile, attack: Attack
) -> None:
    # A second round when the first finds the other tenant slow: on two cores shared with
    # other work, one round in ten or so reads a hiccup. What an attack costs it costs
    # every round (the template attacks, before their budgets, failed every one).
    first = _under_attack(hostile, attack)
    if first is not None:
        second = _under_attack(hostile, attack)
        assert second is None, (attack.name, first, second)


def test_an_inline_json_bomb_takes_no_memory(hostile: Hostile) -> None:
    proc = hostile.srv.proc
    assert proc is not None
    before = _rss(proc.pid)
    response, seconds = _timed(
        lambda: hostile.attacker.post(
            "/api/insights", content=JSON_BOMB, headers={"content-type": "application/json"}
        )
    )
    assert response.status_code == 413, response.text
    assert "it was not read" in response.json()["error"]
    # The 30 MiB body is held while it is counted; ten million dicts (600 MB) are not built.
    assert _rss(proc.pid) - before < 150 * MiB
    assert seconds < 15
    # The same data as a JSON dataset upload.
    upload = JSON_BOMB.replace(b'"question": "total?", "narrative": false, ', b"")
    r = hostile.attacker.post(
        "/datasets", content=upload, headers={"content-type": "application/json"}
    )
    assert r.status_code == 413 and "max_dataset_rows" in r.json()["error"], r.text
