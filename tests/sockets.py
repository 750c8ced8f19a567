"""A TCP server on raw sockets, for upstreams that misbehave below HTTP in tests."""

from __future__ import annotations

import contextlib
import socket
import threading


class SocketServer:
    """Listens on a free 127.0.0.1 port and hands each connection to :meth:`handle` in a
    thread of its own, counting connections. A handler that returns without keeping the
    connection (see :meth:`keep`) has it closed."""

    def __init__(self) -> None:
        self.connections = 0
        self.kept: list[socket.socket] = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self._stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def keep(self, conn: socket.socket) -> None:
        """Hold ``conn`` open, unanswered, until the server closes."""
        self.kept.append(conn)

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        with contextlib.suppress(OSError):  # the client went away: nothing to do
            self.handle(conn)
        if conn not in self.kept:
            conn.close()

    def close(self) -> None:
        self._stop = True
        self.thread.join(timeout=2)
        for conn in self.kept:
            conn.close()
        self.sock.close()
