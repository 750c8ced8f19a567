"""The supervisor of the engine process: starts it, restarts it after a crash, gives up on a loop.

It owns the listening Unix socket (in a private directory) and hands it to each engine process
it starts, so clients can connect at any time: while the engine restarts, their connections wait
in the socket's backlog and are served by the next process. The engine starts on the first
connection (nothing is loaded for a server that never runs a model).

Its state goes to ``engine.json`` beside the socket, written atomically, so that every API
worker can show it (``/ready``, ``/api/ps``, metrics) and name the signal that stopped a runner.
It runs in a thread: in the API process with one worker, in ``serve``'s supervisor with several.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("billumy.engine")

SOCKET_NAME = "engine.sock"
STATUS_NAME = "engine.json"


def exit_reason(returncode: int) -> str:
    """``SIGSEGV`` for a process killed by a signal, ``exit code 3`` otherwise."""
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


@dataclass(frozen=True)
class EngineOptions:
    """What the engine process is started with (from the settings)."""

    threads: int
    num_parallel: int = 1
    batching: bool = False  # one context, num_parallel sequences (engines.batched)
    max_queue: int = 512
    keep_alive_s: float = 300.0
    log_level: str = "info"
    max_crashes: int = 5  # within crash_window_s: then the runner is marked failed
    nice: int = 0  # added to the engine process's niceness (its threads inherit it)


class EngineSupervisor:
    """Runs the engine process; ``start()`` binds the socket, ``stop()`` ends it all."""

    def __init__(
        self,
        options: EngineOptions,
        *,
        crash_window_s: float = 60.0,
        max_backoff_s: float = 5.0,
    ) -> None:
        self.options = options
        self.max_crashes = options.max_crashes
        self.crash_window_s = crash_window_s
        self.max_backoff_s = max_backoff_s
        self.directory = Path(tempfile.mkdtemp(prefix="billumy-engine-"))
        self.socket_path = self.directory / SOCKET_NAME
        self.status_path = self.directory / STATUS_NAME
        self._listener: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._crashes: deque[float] = deque()
        self._status: dict[str, Any] = {"state": "idle", "pid": None, "restarts": 0}

    # --- control ------------------------------------------------------------------------------

    def start(self) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.socket_path))
        os.chmod(self.socket_path, 0o600)
        listener.listen(256)
        listener.set_inheritable(True)
        self._listener = listener
        self._write_status()
        self._thread = threading.Thread(target=self._run, name="engine-supervisor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the engine process (SIGTERM, then SIGKILL) and remove the socket."""
        with self._lock:
            self._stopping.set()
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._listener is not None:
            self._listener.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    @property
    def status(self) -> dict[str, Any]:
        return dict(self._status)

    # --- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        assert self._listener is not None
        # Lazy start: wait for the first client.
        while not self._stopping.is_set():
            readable, _, _ = select.select([self._listener], [], [], 0.2)
            if readable:
                break
        backoff = 0.0
        while not self._stopping.is_set():
            if backoff:
                self._update(state="restarting")
                if self._stopping.wait(backoff):
                    return
            proc = self._spawn()
            returncode = self._wait(proc)
            if proc is None or returncode is None:  # stopping
                return
            reason = exit_reason(returncode)
            now = time.monotonic()
            self._crashes.append(now)
            while self._crashes and self._crashes[0] < now - self.crash_window_s:
                self._crashes.popleft()
            recent = len(self._crashes)
            if recent >= self.max_crashes:
                message = (
                    f"the model runner failed: it stopped {recent} times in "
                    f"{self.crash_window_s:.0f} s (last: {reason}); run `billumy selftest` "
                    "and restart the server"
                )
                log.error(message, extra={"pid": proc.pid, "signal": reason})
                self._update(
                    state="failed", pid=None, message=message,
                    last_exit={"pid": proc.pid, "reason": reason},
                )  # fmt: skip
                self._refuse_forever()
                return
            backoff = min(self.max_backoff_s, 0.1 * 2 ** (recent - 1))
            log.error(
                "the model runner stopped; restarting",
                extra={"runner_pid": proc.pid, "signal": reason, "restart_in_s": backoff},
            )
            self._update(
                state="restarting",
                pid=None,
                restarts=self._status["restarts"] + 1,
                last_exit={"pid": proc.pid, "reason": reason},
                message=f"the model runner stopped: {reason}; restarting",
            )

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        assert self._listener is not None
        fd = self._listener.fileno()
        o = self.options
        command = [
            sys.executable, "-m", "billumy.engines.host", "--fd", str(fd),
            "--threads", str(o.threads), "--num-parallel", str(o.num_parallel),
            "--max-queue", str(o.max_queue), "--keep-alive", repr(o.keep_alive_s),
            "--log-level", o.log_level,
        ]  # fmt: skip
        if o.batching:
            command.append("--batching")
        with self._lock:  # stop() either sees this process or keeps it from starting
            if self._stopping.is_set():
                return None
            proc = subprocess.Popen(command, pass_fds=(fd,), stdin=subprocess.DEVNULL)
            self._proc = proc
        if o.nice:
            # Right after the exec, before it starts its threads (which inherit the value):
            # under contention for the CPU, the API's event loop, which serves every tenant,
            # goes before one tenant's generations.
            try:
                ours = os.getpriority(os.PRIO_PROCESS, 0)
                os.setpriority(os.PRIO_PROCESS, proc.pid, min(19, ours + o.nice))
            except OSError as exc:
                log.warning("could not lower the engine process's CPU priority: %s", exc)
        self._update(state="running", pid=proc.pid, started_at=time.time())
        log.info("model runner started", extra={"runner_pid": proc.pid})
        return proc

    def _wait(self, proc: subprocess.Popen[bytes] | None) -> int | None:
        """The engine's exit status; None when it was stopped on purpose (see ``stop``)."""
        if proc is None:
            return None
        returncode = proc.wait()
        return None if self._stopping.is_set() else returncode

    def _refuse_forever(self) -> None:
        """A failed runner: every connection is closed at once, so clients fail fast."""
        assert self._listener is not None
        while not self._stopping.is_set():
            readable, _, _ = select.select([self._listener], [], [], 0.2)
            if readable:
                with contextlib.suppress(OSError):
                    conn, _ = self._listener.accept()
                    conn.close()

    def _update(self, **changes: Any) -> None:
        self._status.update(changes)
        self._write_status()

    def _write_status(self) -> None:
        partial = self.status_path.with_suffix(".tmp")
        partial.write_text(json.dumps(self._status))
        partial.replace(self.status_path)


def read_status(socket_path: Path) -> dict[str, Any]:
    """The supervisor's state as written beside ``socket_path`` (``{}`` if unreadable)."""
    try:
        loaded = json.loads((socket_path.parent / STATUS_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}
