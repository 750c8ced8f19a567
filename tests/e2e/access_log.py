"""Reading a server's access log (JSON lines on its stderr) in end-to-end tests."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.e2e.server import Server


def access_entry(server: Server, request_id: str, timeout: float = 5.0) -> dict[str, Any]:
    """The access-log line of the request ``request_id``.

    Billumy writes it once the response has been sent, so a client may read the answer a moment
    before the line exists: it is waited for.
    """
    deadline = time.monotonic() + timeout
    while True:
        for line in server.log().splitlines():
            if not line.startswith("{"):
                continue  # the start-up banner and other plain lines
            entry: dict[str, Any] = json.loads(line)
            if entry.get("logger") == "billumy.access" and entry.get("request_id") == request_id:
                return entry
        if time.monotonic() > deadline:
            raise AssertionError(f"no access-log line for request {request_id}:\n{server.log()}")
        time.sleep(0.05)
