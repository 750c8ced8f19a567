"""A real ``billumy serve`` process on a free port, for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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
        # The whole e2e suite can run on the unbatched engine (BILLUMY_TEST_ENGINE_BATCHING=0;
        # batching is the default).
        batching = os.environ.get("BILLUMY_TEST_ENGINE_BATCHING")
        if batching:
            env["BILLUMY_ENGINE_BATCHING"] = "false" if batching == "0" else "true"
        env.update(
            {
                "BILLUMY_DATA_DIR": str(self.data_dir),
                "BILLUMY_PORT": str(self.port),
                "BILLUMY_CONFIG": str(self.data_dir / "billumy.toml"),
                "BILLUMY_NUM_THREADS": "2",
                # The suites share servers and keys across many quick requests about other
                # things: a key's whole minute at once (the burst capped by its limit) keeps
                # the per-minute pace out of their way. Servers that test the pace set it.
                "BILLUMY_RATE_BURST": "1000000",
                **self.env,
            }
        )
        if self.api_key:
            env["BILLUMY_API_KEY"] = self.api_key
        return env

    def create_key(
        self,
        name: str,
        *,
        tenant: str = "default",
        scopes: str = "inference",
        extra: tuple[str, ...] = (),
    ) -> str:
        """A new key made with the CLI on this server's database (``extra``: more options of
        ``billumy keys create``, such as ``("--rpm", "0")``)."""
        args = [str(BIN), "keys", "create", "--name", name, "--tenant", tenant, *extra]
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


def _postgres_bin() -> Path | None:
    """The directory of PostgreSQL's server binaries (initdb, pg_ctl), newest version first."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    return found[0].parent if found else None


class PostgresCluster:
    """A private, throwaway PostgreSQL cluster (``initdb`` + ``pg_ctl``) on a free port, for
    tests that stop and restart the database: the shared one at 5432 is never touched.
    PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` user."""

    def __init__(self) -> None:
        bindir = _postgres_bin()
        if bindir is None:
            raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl) not found")
        self.bindir = bindir
        self.port = free_port()
        # Not under pytest's tmp_path: the postgres user must be able to enter it.
        self.root = Path(tempfile.mkdtemp(prefix="billumy-pg-"))
        self.data = self.root / "data"
        self._as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, user="postgres")
            self._as = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=60)

    def init(self) -> PostgresCluster:
        initdb = str(self.bindir / "initdb")
        self._run(initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        return self

    def start(self) -> PostgresCluster:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.root / "postgres.log")
        pg_ctl = str(self.bindir / "pg_ctl")
        self._run(pg_ctl, "-D", str(self.data), "-o", options, "-l", log, "-w", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
