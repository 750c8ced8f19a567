from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import Server


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
