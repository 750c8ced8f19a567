from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import RedisServer, Server


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


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database on the local server, dropped afterwards."""
    import asyncio
    import os
    import secrets

    import asyncpg

    name = f"billumy_e2e_{secrets.token_hex(4)}"
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
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    srv = RedisServer(tmp_path / "redis").start()
    yield srv
    srv.stop()
