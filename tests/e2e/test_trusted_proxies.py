"""X-Forwarded-For is believed only from BILLUMY_TRUSTED_PROXIES: the access log's client."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import pytest

from tests.e2e.access_log import access_entry
from tests.e2e.server import Server


def _client_logged(server: Server, forwarded_for: str) -> str:
    """Sends a request from 127.0.0.1 with this X-Forwarded-For; the client its log line names."""
    request_id = secrets.token_hex(8)
    headers = {
        **server.headers,
        "X-Forwarded-For": forwarded_for,
        "X-Forwarded-Proto": "https",
        "X-Request-ID": request_id,
    }
    response = httpx.get(server.url + "/api/version", headers=headers, timeout=30)
    assert response.status_code == 200
    assert response.headers["x-request-id"] == request_id
    entry = access_entry(server, request_id)
    assert entry["path"] == "/api/version" and entry["status"] == 200
    client = entry["client"]
    assert isinstance(client, str)
    return client


@pytest.mark.parametrize(
    "trusted",
    [
        None,  # no trusted proxies (the default): the peer that connected is the client
        "10.0.0.0/8, 192.168.0.1",  # proxies are trusted, but not this peer: header ignored
    ],
)
def test_forwarded_for_from_an_untrusted_peer_is_ignored(
    make_server: type[Server], tmp_path: Path, trusted: str | None
) -> None:
    env = {} if trusted is None else {"BILLUMY_TRUSTED_PROXIES": trusted}
    server = make_server(data_dir=tmp_path / "billumy", env=env).start()
    assert _client_logged(server, "203.0.113.9") == "127.0.0.1"


def test_forwarded_for_from_a_trusted_proxy_names_the_client(
    make_server: type[Server], tmp_path: Path
) -> None:
    env = {"BILLUMY_TRUSTED_PROXIES": "127.0.0.1"}
    server = make_server(data_dir=tmp_path / "billumy", env=env).start()
    assert _client_logged(server, "203.0.113.9") == "203.0.113.9"
    # Through several proxies, the right-most address that is not a trusted proxy is the
    # client: whatever a client wrote to the left of it cannot be believed.
    assert _client_logged(server, "198.51.100.1, 203.0.113.9") == "203.0.113.9"
    assert _client_logged(server, "198.51.100.1, 203.0.113.9, 127.0.0.1") == "203.0.113.9"


def test_an_invalid_trusted_proxy_stops_the_start(tmp_path: Path) -> None:
    server = Server(data_dir=tmp_path / "billumy", env={"BILLUMY_TRUSTED_PROXIES": "nginx"})
    with pytest.raises(RuntimeError, match="server exited early"):
        server.start()
    said = " ".join(server.log().split())  # the terminal wraps long lines
    assert "invalid setting trusted_proxies: Value error, 'nginx' is not an IP address" in said
