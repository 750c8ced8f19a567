from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.server import PostgresCluster, RedisServer, Server
from tests.logscan import SESSION, Finding
from tests.logwatch import watch_aiohttp, watch_httpx, watch_logging, watch_subprocess

_UNDO = pytest.StashKey[list[Callable[[], None]]]()
_FINDINGS = pytest.StashKey[list[Finding]]()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Watch, for the log scan at the end, what the tests send and what gets logged."""
    session.config.stash[_UNDO] = [
        watch_httpx(SESSION),
        watch_aiohttp(SESSION),
        watch_subprocess(SESSION),
        watch_logging(SESSION),
    ]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No log of the session holds a key or (``log_prompts`` off) a prompt; else it fails."""
    for undo in session.config.stash.get(_UNDO, []):
        undo()
    findings = session.config.stash[_FINDINGS] = SESSION.scan()
    if findings and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    findings = terminalreporter.config.stash.get(_FINDINGS, None)
    if findings is None:
        return
    if not findings:
        terminalreporter.write_line(f"log scan: clean: {SESSION.summary()}")
        return
    terminalreporter.section("log scan: secrets in the logs", red=True)
    terminalreporter.write_line(f"{len(findings)} findings; scanned {SESSION.summary()}:")
    for finding in findings:
        terminalreporter.write_line(str(finding))


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real Billumy process shared by the end-to-end tests that need default settings."""
    srv = Server(data_dir=tmp_path_factory.mktemp("billumy")).start()
    yield srv
    srv.stop()
    # After every test that used it: the key and the prompts never reached the logs.
    log = srv.log()
    assert srv.api_key and srv.api_key not in log
    assert "Anderson" not in log and "Describe the city of Recife" not in log


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[type[Server]]:
    """Start servers with custom settings; stopped at the end of the test."""
    started: list[Server] = []

    class _Factory(Server):
        def start(self, timeout: float = 60.0) -> Server:
            started.append(self)
            return super().start(timeout)

    yield _Factory
    for srv in started:
        srv.stop()


MYSQL_ENV = "BILLUMY_TEST_MYSQL_URL"
MYSQL_DEFAULT = "mysql+pymysql://root@127.0.0.1:3306/test"


@contextlib.contextmanager
def fresh_mysql_database(prefix: str = "billumy_test") -> Iterator[str]:
    """A fresh MySQL/MariaDB database on the server of BILLUMY_TEST_MYSQL_URL (default: the
    local MariaDB, root without a password), dropped afterwards; skips the test when that
    server cannot be reached (MariaDB is not installed everywhere)."""
    import os
    import secrets

    import sqlalchemy as sa

    base = os.environ.get(MYSQL_ENV) or MYSQL_DEFAULT
    name = f"{prefix}_{secrets.token_hex(4)}"
    url = sa.make_url(base).set(drivername="mysql+pymysql")
    admin = sa.create_engine(url, poolclass=sa.NullPool, connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    except sa.exc.OperationalError as exc:
        admin.dispose()
        reason = type(exc.orig).__name__, exc.orig.args[0] if exc.orig.args else ""
        pytest.skip(f"MySQL tests need a server at {MYSQL_ENV} (default {MYSQL_DEFAULT}): {reason}")
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        admin.dispose()


@contextlib.contextmanager
def fresh_pg_database(prefix: str = "billumy_e2e") -> Iterator[str]:
    """A fresh PostgreSQL database on the local server, dropped afterwards (skips the test when
    PostgreSQL is not reachable, except on CI)."""
    import asyncio
    import os
    import secrets

    import asyncpg

    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = "postgresql://postgres@127.0.0.1:5432/test"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(run(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database on the local server, dropped afterwards."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    srv = RedisServer(tmp_path / "redis").start()
    yield srv
    srv.stop()


@pytest.fixture
def pg_cluster() -> Iterator[PostgresCluster]:
    """A private PostgreSQL cluster on a free port that a test may stop and restart."""
    try:
        cluster = PostgresCluster()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    try:
        yield cluster.init().start()
    finally:
        cluster.remove()
