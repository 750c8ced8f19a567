"""Graceful shutdown of the streams in flight (see ``billumy.server.DrainingServer``)."""

from __future__ import annotations

import time

from billumy.errors import ShuttingDownError


class Drain:
    """Set when the server is told to stop (SIGTERM). Running streams may go on for the grace
    period; after it, each ends at its next chunk with an in-band error (and the reply so far
    is stored as incomplete), so nobody waits on a dying process. One per app: the server that
    runs the app begins it, and the app's stream writers check it."""

    def __init__(self) -> None:
        self.deadline: float | None = None

    def begin(self, grace_s: float) -> None:
        if self.deadline is None:
            self.deadline = time.monotonic() + grace_s

    def check(self) -> None:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise ShuttingDownError
