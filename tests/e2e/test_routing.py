"""Routing through real upstream servers: two Billumy processes as Ollama and OpenAI upstreams
of a gateway Billumy, plus sockets that stay silent, answer garbage, or must never be reached."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import ollama
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.server import Server, free_port
from tests.sockets import SocketServer

UPSTREAM_KEY_A = "bk_upstream-a-secret-0123456789"
UPSTREAM_KEY_B = "bk_upstream-b-secret-0123456789"
OPTS = {"temperature": 0, "num_predict": 4, "seed": 1}


class Listener(SocketServer):
    """A TCP listener on a free port that records connections; it answers health checks (any
    GET) as a healthy server would, so that its circuit stays closed whatever the timing, and
    every other request with nothing (a slow upstream) or ``reply`` (garbage)."""

    def __init__(self, reply: bytes | None = None) -> None:
        self.reply = reply
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        head = conn.recv(65536)
        if head.startswith(b"GET "):
            conn.sendall(HEALTHY)
        elif self.reply is not None:
            conn.sendall(self.reply)
        else:
            self.keep(conn)  # silent: held open, never answered


HEALTHY = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 20\r\n"
    b'Connection: close\r\n\r\n{"version": "0.0.0"}'
)
GARBAGE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nContent-Length: 22\r\n"
    b"Connection: close\r\n\r\nthis is not json {{{\r\n"
)


def _config(a: Server, b: Server, silent: Listener, junk: Listener, dead_port: int) -> str:
    return f"""
health_interval = 0.5
breaker_failures = 2
breaker_cooldown = 1.0
default_requests_per_minute = 0
cache_ttl = 0

[[deployments]]
name = "node-a"
model = "remote"
provider = "ollama"
url = "{a.url}"
upstream_model = "smollm2-135m"
api_key = "{UPSTREAM_KEY_A}"

[[deployments]]
name = "node-b"
model = "remote"
provider = "ollama"
url = "{b.url}"
upstream_model = "smollm2-135m"
api_key = "{UPSTREAM_KEY_B}"

[[deployments]]
name = "node-b-v1"
model = "remote-openai"
provider = "openai"
url = "{b.url}/v1"
upstream_model = "smollm2-135m"
api_key = "{UPSTREAM_KEY_B}"

[[deployments]]
name = "silent"
model = "slow"
url = "http://127.0.0.1:{silent.port}"
first_token_timeout = 1.0
timeout = 5.0

[[deployments]]
name = "junk"
model = "garbage"
url = "http://127.0.0.1:{junk.port}"

[[deployments]]
name = "nowhere"
model = "dead"
url = "http://127.0.0.1:{dead_port}"
connect_timeout = 1.0

[[deployments]]
name = "nowhere-2"
model = "dead-with-fallback"
url = "http://127.0.0.1:{dead_port}"
connect_timeout = 1.0

[fallbacks]
dead-with-fallback = ["smollm2-135m"]

[tiers.maestro]
simple = "remote"
medium = "remote-openai"
deep = "smollm2-135m"
classifier = "smollm2-135m"
classifier_timeout = 0.001
"""


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    root = tmp_path_factory.mktemp("fleet")
    # The upstreams allow fewer tokens than the gateway: their refusals must come back as 400s.
    limits = {"BILLUMY_MAX_NUM_PREDICT": "64"}
    a = Server(data_dir=root / "a", api_key=UPSTREAM_KEY_A, env=limits).start()
    b = Server(data_dir=root / "b", api_key=UPSTREAM_KEY_B, env=limits).start()
    silent, junk = Listener(), Listener(GARBAGE)
    dead_port = free_port()
    gateway = Server(data_dir=root / "gateway")
    gateway.data_dir.mkdir(parents=True)
    (gateway.data_dir / "billumy.toml").write_text(_config(a, b, silent, junk, dead_port))
    gateway.start()
    yield {"a": a, "b": b, "gateway": gateway, "silent": silent, "junk": junk}
    gateway.stop()
    a.stop()
    b.stop()
    silent.close()
    junk.close()
    log = gateway.log()
    # Upstream credentials and addresses never reach the gateway's log.
    assert UPSTREAM_KEY_A not in log and UPSTREAM_KEY_B not in log
    assert a.url not in log and b.url not in log and f"127.0.0.1:{junk.port}" not in log


def _gateway(fleet: dict[str, object]) -> Server:
    server = fleet["gateway"]
    assert isinstance(server, Server)
    return server


def _chat(gw: Server, model: str, text: str = "Say hi", **extra: object) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}], "stream": False}
    body["options"] = OPTS
    body.update(extra)
    return httpx.post(gw.url + "/api/chat", json=body, headers=gw.headers, timeout=60)


def test_ollama_upstream_through_the_official_client(fleet: dict[str, object]) -> None:
    gw = _gateway(fleet)
    client = ollama.Client(host=gw.url, headers=gw.headers)
    parts = list(
        client.chat(
            model="remote",
            messages=[{"role": "user", "content": "Hello"}],
            stream=True,
            options=OPTS,
        )
    )
    assert parts[-1].done and parts[-1].eval_count == 4
    assert parts[-1].prompt_eval_count and parts[-1].total_duration
    text = "".join(p.message.content or "" for p in parts)
    assert text.strip()
    generated = client.generate(model="remote", prompt="Hello", options=OPTS)
    assert generated.done and generated.response and generated.eval_count == 4
    embedded = client.embed(model="remote", input=["one", "two"])
    assert len(embedded.embeddings) == 2 and len(embedded.embeddings[0]) > 100


def test_routing_headers_and_openai_upstream(fleet: dict[str, object]) -> None:
    gw = _gateway(fleet)
    response = _chat(gw, "remote")
    assert response.status_code == 200, response.text
    assert response.headers["x-billumy-deployment"] in {"node-a", "node-b"}
    assert response.json()["eval_count"] == 4
    response = _chat(gw, "remote-openai")
    assert response.status_code == 200, response.text
    assert response.headers["x-billumy-deployment"] == "node-b-v1"
    body = response.json()
    assert body["message"]["content"] and body["eval_count"] == 4 and body["prompt_eval_count"]
    # The official openai client in front, an OpenAI-compatible upstream behind.
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.api_key)
    completion = client.chat.completions.create(
        model="remote-openai",
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=4,
        temperature=0,
    )
    assert completion.choices[0].message.content
    assert completion.usage is not None and completion.usage.completion_tokens == 4
    stream = client.chat.completions.create(
        model="remote-openai",
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=4,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    events = list(stream)
    assert events[-1].usage is not None and events[-1].usage.completion_tokens == 4
    vectors = client.embeddings.create(model="remote-openai", input=["a", "b", "c"])
    assert [d.index for d in vectors.data] == [0, 1, 2]


def test_tags_and_ps_show_upstream_models(fleet: dict[str, object]) -> None:
    gw = _gateway(fleet)
    tags = httpx.get(gw.url + "/api/tags", headers=gw.headers).json()["models"]
    remote = next(m for m in tags if m["name"] == "remote:latest")
    assert remote["deployments"] == ["node-a", "node-b"]
    assert remote["details"]["format"] == "upstream"
    ps = httpx.get(gw.url + "/api/ps", headers=gw.headers).json()["models"]
    marked = {m["deployment"]: m for m in ps if "deployment" in m}
    assert {"node-a", "node-b", "node-b-v1"} <= set(marked)
    assert marked["node-b-v1"]["provider"] == "openai"
    assert "url" not in marked["node-a"] and "api_key" not in marked["node-a"]


def test_traffic_moves_when_a_deployment_dies_and_returns(fleet: dict[str, object]) -> None:
    gw, a = _gateway(fleet), fleet["a"]
    assert isinstance(a, Server)
    used = {_chat(gw, "remote").headers["x-billumy-deployment"] for _ in range(8)}
    assert used == {"node-a", "node-b"}  # least outstanding, ties shared
    a.stop()
    try:
        after = []
        for _ in range(6):
            response = _chat(gw, "remote")
            assert response.status_code == 200, response.text  # retried before the first byte
            after.append(response.headers["x-billumy-deployment"])
        assert set(after) == {"node-b"}
    finally:
        a.start()
    deadline = time.monotonic() + 20
    back: set[str] = set()
    while time.monotonic() < deadline and "node-a" not in back:
        response = _chat(gw, "remote")
        assert response.status_code == 200, response.text
        back.add(response.headers["x-billumy-deployment"])
        time.sleep(0.2)
    assert "node-a" in back


def test_slow_upstream_is_a_504(fleet: dict[str, object]) -> None:
    gw, silent = _gateway(fleet), fleet["silent"]
    assert isinstance(silent, Listener)
    started = time.monotonic()
    response = _chat(gw, "slow")
    assert response.status_code == 504
    message = response.json()["error"]
    assert "silent" in message and "did not answer" in message
    assert str(silent.port) not in message and "127.0.0.1" not in message
    assert time.monotonic() - started < 15


def test_garbage_upstream_is_a_502(fleet: dict[str, object]) -> None:
    gw, junk = _gateway(fleet), fleet["junk"]
    assert isinstance(junk, Listener)
    response = _chat(gw, "garbage")
    assert response.status_code == 502
    message = response.json()["error"]
    assert "junk" in message and "invalid response" in message
    assert str(junk.port) not in message


def test_unreachable_upstream_is_a_503_and_fallback_answers(fleet: dict[str, object]) -> None:
    gw = _gateway(fleet)
    response = _chat(gw, "dead")
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert "nowhere" in response.json()["error"]
    response = _chat(gw, "dead-with-fallback")
    assert response.status_code == 200, response.text
    assert response.headers["x-billumy-deployment"] == "embedded"
    # Health checks have found the dead ones: /ready (no key needed) says so, without addresses.
    ready = httpx.get(gw.url + "/ready").json()
    assert ready["status"] == "degraded"
    assert ready["upstreams"]["nowhere"] == "open" and ready["upstreams"]["node-b"] == "closed"
    assert "dead:latest" in ready["models_without_deployment"]
    assert "127.0.0.1" not in str(ready)


def test_no_request_reaches_a_host_outside_the_configuration(fleet: dict[str, object]) -> None:
    gw = _gateway(fleet)
    trap = Listener(GARBAGE)
    try:
        target = f"127.0.0.1:{trap.port}"
        for model in (
            f"http://{target}/api",
            f"{target}/remote",
            f"remote@{target}",
            "../../remote",
            f"remote:{trap.port}",
            f"//{target}/x",
        ):
            response = _chat(gw, model)
            assert response.status_code in (400, 404), (model, response.text)
        headers = {
            **gw.headers,
            "X-Forwarded-Host": target,
            "X-Billumy-Upstream": f"http://{target}",
            "Forwarded": f"host={target}",
        }
        body = {
            "model": "remote",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": False,
            "options": OPTS,
            "url": f"http://{target}",
            "base_url": f"http://{target}",
            "host": f"http://{target}",
        }
        response = httpx.post(gw.url + "/api/chat", json=body, headers=headers, timeout=60)
        assert response.status_code == 200
        client = openai.OpenAI(
            base_url=gw.url + "/v1", api_key=gw.api_key, default_headers={"Host": target}
        )
        with pytest.raises((openai.NotFoundError, openai.BadRequestError)):
            client.chat.completions.create(
                model=f"http://{target}/v1", messages=[{"role": "user", "content": "hi"}]
            )
        assert trap.connections == 0
    finally:
        trap.close()


def test_maestro_tiers_choose_a_model_and_say_so(fleet: dict[str, object]) -> None:
    gw = _gateway(fleet)
    # The classifier cannot answer within 1 ms here, so the rules decide.
    simple = _chat(gw, "maestro", "Oi, tudo bem?")
    assert simple.status_code == 200, simple.text
    assert simple.headers["x-billumy-tier"] == "simple"
    assert simple.headers["x-billumy-deployment"] in {"node-a", "node-b"}
    assert simple.json()["model"] == "maestro"
    deep = _chat(
        gw,
        "maestro",
        "Analise as vendas por região e compare a tendência do último trimestre: por que caíram?",
    )
    assert deep.status_code == 200, deep.text
    assert deep.headers["x-billumy-tier"] == "deep"
    assert deep.headers["x-billumy-deployment"] == "embedded"
    medium = _chat(gw, "maestro", "What is a good name for a bakery in Recife?")
    assert medium.headers["x-billumy-tier"] == "medium"
    assert medium.headers["x-billumy-deployment"] == "node-b-v1"


def test_upstream_bad_request_is_a_400(fleet: dict[str, object]) -> None:
    gw = _gateway(fleet)
    # The upstream refuses num_predict over its own limit: its message comes back as a 400,
    # and a client's mistake does not count against the deployment's circuit.
    for _ in range(3):
        response = _chat(gw, "remote", options={"num_predict": 100})
        assert response.status_code == 400
        message = response.json()["error"]
        assert "rejected the request" in message and "exceeds" in message
    assert _chat(gw, "remote").status_code == 200


def _scrape(gw: Server, key: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(gw.url + "/metrics", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_add_up_after_real_traffic(fleet: dict[str, object]) -> None:
    gw = _gateway(fleet)
    key = gw.create_key("prometheus", scopes="metrics")
    assert httpx.get(gw.url + "/metrics").status_code == 401
    inference_only = gw.create_key("no-metrics")
    denied = httpx.get(gw.url + "/metrics", headers={"Authorization": f"Bearer {inference_only}"})
    assert denied.status_code == 403
    before = _scrape(gw, key)
    answers = [_chat(gw, "remote").json() for _ in range(3)]
    tiered = _chat(gw, "maestro", "Oi!")
    assert tiered.status_code == 200
    after = _scrape(gw, key)

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    chat = {"route": "/api/chat", "method": "POST", "status": "200"}
    assert delta("billumy_requests_total", **chat) == 4
    assert delta("billumy_request_duration_seconds_count", route="/api/chat") == 4
    completion = sum(a["eval_count"] for a in answers)
    prompt = sum(a["prompt_eval_count"] for a in answers)
    remote = "remote:latest"
    assert delta("billumy_tokens_total", model=remote, kind="completion") == completion + 4
    assert delta("billumy_tokens_total", model=remote, kind="prompt") >= prompt
    assert delta("billumy_time_to_first_token_seconds_count", model=remote) == 4
    served = sum(
        delta("billumy_routed_total", deployment=d, model=remote) for d in ("node-a", "node-b")
    )
    assert served == 4
    assert delta("billumy_cache_lookups_total", result="bypass") == 4  # the cache is off here
    assert (
        delta(
            "billumy_maestro_decisions_total", model="maestro:latest", tier="simple", source="rules"
        )
        == 1
    )
    # Live gauges: health and circuit state per deployment, without addresses.
    assert _value(after, "billumy_upstream_healthy", deployment="node-b", model="remote") == 1
    assert _value(after, "billumy_upstream_circuit_state", deployment="nowhere", state="open") == 1
    assert _value(after, "billumy_queue_depth") == 0
