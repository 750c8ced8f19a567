"""Outcomes recorded where they happen: after real requests through every kind of backend (an
Ollama and an OpenAI upstream, both a second Billumy process, an embedded deployment, and the
embedded engine without a deployment), streaming and not, through the official clients,
``/api/ps`` and ``/metrics`` count each request once: completed, failed or cancelled."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import ollama
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.server import Server

UPSTREAM_KEY = "bk_outcomes-upstream-secret-0123456789"
OPTS = {"temperature": 0, "num_predict": 4, "seed": 1}
MESSAGES = [{"role": "user", "content": "Hi"}]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _config(upstream: Server) -> str:
    return f"""
default_requests_per_minute = 0
cache_ttl = 0

[[deployments]]
name = "node"
model = "remote"
provider = "ollama"
url = "{upstream.url}"
upstream_model = "smollm2-135m"
api_key = "{UPSTREAM_KEY}"

[[deployments]]
name = "node-v1"
model = "remote-openai"
provider = "openai"
url = "{upstream.url}/v1"
upstream_model = "smollm2-135m"
api_key = "{UPSTREAM_KEY}"

[[deployments]]
name = "local"
model = "local"
provider = "embedded"
upstream_model = "smollm2-135m"
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("outcomes")
    # The upstream allows fewer tokens than the gateway: a request over it is its 400.
    limits = {"BILLUMY_MAX_NUM_PREDICT": "64"}
    upstream = Server(data_dir=root / "upstream", api_key=UPSTREAM_KEY, env=limits).start()
    gw = Server(data_dir=root / "gateway")
    gw.data_dir.mkdir(parents=True)
    (gw.data_dir / "billumy.toml").write_text(_config(upstream))
    try:
        yield gw.start()
    finally:
        gw.stop()
        upstream.stop()


@pytest.fixture(scope="module")
def metrics_key(gateway: Server) -> str:
    return gateway.create_key("prometheus", scopes="metrics")


def _scrape(gw: Server, key: str) -> Samples:
    response = httpx.get(gw.url + "/metrics", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _served(gw: Server) -> dict[str, int]:
    """``served`` of each deployment as ``/api/ps`` shows it (upstream deployments)."""
    ps = httpx.get(gw.url + "/api/ps", headers=gw.headers).json()["models"]
    return {m["deployment"]: m["served"] for m in ps if "deployment" in m}


class Counts:
    """Deltas of the outcome counters between two scrapes."""

    def __init__(self, gw: Server, key: str) -> None:
        self.gw, self.key = gw, key
        self.before = _scrape(gw, key)
        self.ps_before = _served(gw)

    def outcome(self, deployment: str, outcome: str) -> float:
        name = "billumy_backend_outcomes_total"
        labels = {"deployment": deployment, "outcome": outcome}
        return _value(_scrape(self.gw, self.key), name, **labels) - _value(
            self.before, name, **labels
        )

    def served(self, deployment: str) -> float:
        name = "billumy_upstream_served_total"
        after = _value(_scrape(self.gw, self.key), name, deployment=deployment)
        return after - _value(self.before, name, deployment=deployment)

    def ps(self, deployment: str) -> int:
        return _served(self.gw)[deployment] - self.ps_before.get(deployment, 0)


def test_openai_upstream_counts_every_completion(gateway: Server, metrics_key: str) -> None:
    counts = Counts(gateway, metrics_key)
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.api_key, max_retries=0)
    for _ in range(5):
        completion = client.chat.completions.create(
            model="remote-openai", messages=MESSAGES, max_tokens=4, temperature=0
        )
        assert completion.choices[0].message.content
    for _ in range(2):
        events = list(
            client.chat.completions.create(
                model="remote-openai", messages=MESSAGES, max_tokens=4, temperature=0, stream=True
            )
        )
        assert events[-1].choices[-1].finish_reason
    assert counts.ps("node-v1") == 7
    assert counts.served("node-v1") == 7
    assert counts.outcome("node-v1", "completed") == 7
    assert counts.outcome("node-v1", "failed") == counts.outcome("node-v1", "cancelled") == 0


def test_ollama_upstream_and_embedded_deployment(gateway: Server, metrics_key: str) -> None:
    counts = Counts(gateway, metrics_key)
    client = ollama.Client(host=gateway.url, headers=gateway.headers)
    for model in ("remote", "local"):
        parts = list(client.chat(model=model, messages=MESSAGES, stream=True, options=OPTS))
        assert parts[-1].done
        assert client.chat(model=model, messages=MESSAGES, options=OPTS).done
        assert client.generate(model=model, prompt="Hi", options=OPTS).done
        parts = list(client.generate(model=model, prompt="Hi", stream=True, options=OPTS))
        assert parts[-1].done
        assert len(client.embed(model=model, input=["one", "two"]).embeddings) == 2
    # The OpenAI routes in front of an Ollama upstream and of the embedded deployment.
    v1 = openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.api_key, max_retries=0)
    for model in ("remote", "local"):
        v1.chat.completions.create(model=model, messages=MESSAGES, max_tokens=4)
        assert list(
            v1.chat.completions.create(model=model, messages=MESSAGES, max_tokens=4, stream=True)
        )
    assert counts.ps("node") == 7
    for deployment in ("node", "local"):
        assert counts.served(deployment) == 7
        assert counts.outcome(deployment, "completed") == 7
        assert counts.outcome(deployment, "failed") == 0
        assert counts.outcome(deployment, "cancelled") == 0


def test_embedded_engine_without_a_deployment(gateway: Server, metrics_key: str) -> None:
    counts = Counts(gateway, metrics_key)
    client = ollama.Client(host=gateway.url, headers=gateway.headers)
    list(client.chat(model="smollm2-135m", messages=MESSAGES, stream=True, options=OPTS))
    client.generate(model="smollm2-135m", prompt="Hi", options=OPTS)
    client.embed(model="smollm2-135m", input="one")
    assert counts.outcome("embedded", "completed") == 3


def test_failures_and_cancellations_are_counted_once(gateway: Server, metrics_key: str) -> None:
    counts = Counts(gateway, metrics_key)
    # The upstream refuses num_predict over its limit: a failure, not served.
    body = {"model": "remote", "messages": MESSAGES, "stream": False}
    refused = httpx.post(
        gateway.url + "/api/chat",
        json={**body, "options": {"num_predict": 100}},
        headers=gateway.headers,
        timeout=60,
    )
    assert refused.status_code == 400
    assert counts.outcome("node", "failed") == 1
    # A client that goes after the first line: its stream is cancelled.
    long = {**body, "stream": True, "options": {"num_predict": 64, "temperature": 0}}
    for model, deployment in (("remote", "node"), ("local", "local")):
        with httpx.stream(
            "POST", gateway.url + "/api/chat", json={**long, "model": model},
            headers=gateway.headers, timeout=60,
        ) as response:  # fmt: skip
            assert response.status_code == 200
            next(response.iter_lines())
        deadline = time.monotonic() + 30
        while counts.outcome(deployment, "cancelled") < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert counts.outcome(deployment, "cancelled") == 1
    assert counts.served("node") == counts.served("local") == 0
    assert counts.outcome("node", "completed") == counts.outcome("local", "completed") == 0
