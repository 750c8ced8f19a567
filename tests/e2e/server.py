"""A real ``billumy serve`` process on a free port, for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.logscan import SESSION, Log

BIN = Path(sys.executable).parent / "billumy"
TRUE = {"1", "true", "yes", "on"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    api_key: str | None = "bk_test-admin-key-0123456789"
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    # This server's entry in the end-of-session log scan.
    scanned: Log | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def environment(self) -> dict[str, str]:
        """The environment ``billumy`` commands of this server run with."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("BILLUMY_")}
        env.update(
            {
                "BILLUMY_DATA_DIR": str(self.data_dir),
                "BILLUMY_PORT": str(self.port),
                "BILLUMY_CONFIG": str(self.data_dir / "billumy.toml"),
                "BILLUMY_NUM_THREADS": "2",
                **self.env,
            }
        )
        if self.api_key:
            env["BILLUMY_API_KEY"] = self.api_key
        return env

    def create_key(self, name: str, *, tenant: str = "default", scopes: str = "inference") -> str:
        """A new key made with the CLI on this server's database."""
        args = [str(BIN), "keys", "create", "--name", name, "--tenant", tenant]
        for scope in scopes.split(","):
            args += ["--scope", scope]
        out = subprocess.run(
            args, env=self.environment(), capture_output=True, text=True, check=True, timeout=60
        )
        SESSION.add_secret(out.stdout.strip(), "created key")
        return out.stdout.strip()

    def _register_log(self, env: dict[str, str]) -> None:
        """Enter the log and the secrets of this start in the end-of-session scan."""
        config: dict[str, object] = {}
        path = Path(env["BILLUMY_CONFIG"])
        with contextlib.suppress(OSError, ValueError):  # absent, or broken on purpose
            config = tomllib.loads(path.read_text())
        _config_secrets(config)
        SESSION.add_secret(env.get("BILLUMY_API_KEY"), "admin key")
        for name in ("BILLUMY_DATABASE_URL", "BILLUMY_REDIS_URL"):
            SESSION.add_secret(urlsplit(env.get(name, "")).password, "URL password")
        log_prompts = env.get("BILLUMY_LOG_PROMPTS", str(config.get("log_prompts", "")))
        if self.scanned is None or self.scanned.path != self.log_path:
            log = Log(f"billumy serve log {self.log_path}", self.log_path, source="billumy serve")
            self.scanned = SESSION.add_log(log)
        self.scanned.allow_prompts |= log_prompts.strip().lower() in TRUE
        self.scanned.prints_admin_key |= not self.api_key

    def start(self, timeout: float = 60.0) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = self.environment()
        self.log_path = self.data_dir / f"server-{self.port}.log"
        log = self.log_path.open("ab")
        self._register_log(env)
        self.proc = subprocess.Popen([str(BIN), "serve"], env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.scanned is not None:
            self.scanned.snapshot()  # the scan still sees it if its directory goes


def _config_secrets(node: object) -> None:
    """Enter the ``api_key`` values (upstream credentials) of a billumy.toml in the scan."""
    if isinstance(node, dict):
        for name, value in node.items():
            if name == "api_key" and isinstance(value, str):
                SESSION.add_secret(value, "key in billumy.toml")
            _config_secrets(value)
    elif isinstance(node, list):
        for item in node:
            _config_secrets(item)


class RedisServer:
    """A private redis-server on a free port, for tests that stop and restart it."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ping = subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True
            )
            if ping.stdout.strip() == "PONG":
                return self
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
