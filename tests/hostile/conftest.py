"""A real ``billumy serve`` (the real model in its engine process) for the hostile tests, and
the checks every one of them ends with: the engine process did not restart, and another
tenant's ordinary request is answered at once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.server import Server

# A plain request of the other tenant: greedy, two tokens, never from the response cache.
ORDINARY = {
    "model": "smollm2-135m",
    "prompt": "The capital of France is",
    "raw": True,
    "stream": False,
    "options": {"num_predict": 2, "temperature": 0},
}


@dataclass
class Hostile:
    """The server under attack, a client with the attacker's key (an ordinary inference key)
    and one with another tenant's."""

    srv: Server
    attacker: httpx.Client
    neighbour: httpx.Client
    admin: httpx.Client

    def engine(self) -> dict[str, Any]:
        runner: dict[str, Any] = self.admin.get("/api/ps").json()["runner"]
        return runner

    def restarts_metric(self) -> float:
        text = self.admin.get("/metrics").text
        for family in text_string_to_metric_families(text):
            if family.name == "billumy_engine_restarts":
                return float(family.samples[0].value)
        raise AssertionError("no billumy_engine_restarts_total in /metrics")

    def neighbour_is_answered(self) -> None:
        r = self.neighbour.post("/api/generate", json=ORDINARY)
        assert r.status_code == 200, r.text
        assert r.json()["done"] and r.json()["response"]


def refused(r: httpx.Response, *words: str, status: tuple[int, ...] = (400,)) -> str:
    """The response is a client error with a readable ``{"error": "..."}`` naming ``words``."""
    assert r.status_code in status, (r.status_code, r.text)
    error = r.json()["error"]
    if isinstance(error, dict):  # the OpenAI shape under /v1
        error = error["message"]
    assert isinstance(error, str) and error.strip(), r.text
    for word in words:
        assert word in error, (word, error)
    return error


def _client(srv: Server, key: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}", "Cache-Control": "no-store"}
    return httpx.Client(base_url=srv.url, headers=headers, timeout=120)


@pytest.fixture(scope="package")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    # Its own server: a restart counted here was caused by these tests.
    srv = Server(data_dir=tmp_path_factory.mktemp("hostile")).start()
    assert srv.api_key is not None
    attacker_key = srv.create_key("attacker", tenant="attacker")
    # The other tenant measures latency, request after request through every attack: the
    # server's default 600 a minute would refuse it on a fast machine (its own limits are
    # tested elsewhere); the attacker keeps the defaults.
    neighbour_key = srv.create_key("neighbour", tenant="neighbour", extra=("--rpm", "0"))
    with (
        _client(srv, attacker_key) as attacker,
        _client(srv, neighbour_key) as neighbour,
        _client(srv, srv.api_key) as admin,
    ):
        kit = Hostile(srv, attacker, neighbour, admin)
        kit.neighbour_is_answered()  # the engine process runs, the model is loaded
        yield kit
    srv.stop()


@pytest.fixture(autouse=True)
def engine_survives(hostile: Hostile) -> Iterator[None]:
    """Every hostile test leaves the engine process it found, and the other tenant served."""
    before = hostile.engine()
    assert before["state"] == "running", before
    yield
    after = hostile.engine()
    assert after["pid"] == before["pid"] and after["restarts"] == 0, (before, after)
    hostile.neighbour_is_answered()
    assert hostile.engine()["pid"] == before["pid"]
    assert hostile.restarts_metric() == 0
