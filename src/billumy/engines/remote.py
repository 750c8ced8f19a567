"""The embedded engine as the API process sees it: a client of the engine process.

:class:`EngineClient` has the engine interface (``generate``, ``embed``, ``load``, ``unload``,
``loaded``, ``count_tokens``) and forwards it over one multiplexed Unix-socket connection to the
engine process (see :mod:`billumy.engines.host`). It never loads llama.cpp. When the connection
ends because the engine process died, every request in flight fails with
:class:`~billumy.errors.EngineUnavailableError` naming the signal, and the next request
connects again: the supervisor's next engine process answers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from billumy.engines import wire
from billumy.engines.base import Chunk, Embeddings, Generation, LoadedModel
from billumy.engines.supervisor import read_status
from billumy.errors import BillumyError, EngineUnavailableError

log = logging.getLogger(__name__)

_LOST = object()  # put in a request's queue when the connection ends


class _Connection:
    """One open connection to the engine process; requests are told apart by id."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.pid: int | None = None
        self.pending: dict[int, asyncio.Queue[Any]] = {}
        self.ids = itertools.count(1)
        self.lost: EngineUnavailableError | None = None
        self.task: asyncio.Task[None] | None = None

    def open(self) -> tuple[int, asyncio.Queue[Any]]:
        request_id = next(self.ids)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self.pending[request_id] = queue
        return request_id, queue

    def send(self, message: dict[str, Any]) -> None:
        if self.lost is not None:
            raise self.lost
        self.writer.write(wire.encode(message))


class EngineClient:
    """The engine interface, served by the engine process behind ``socket_path``."""

    def __init__(self, socket_path: Path, *, start_timeout_s: float = 120.0) -> None:
        self.socket_path = socket_path
        self.start_timeout_s = start_timeout_s
        self._connection: _Connection | None = None
        self._connecting = asyncio.Lock()
        self._status: dict[str, Any] = {"queue_depth": 0, "loaded": []}

    # --- what the API shows -------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        return int(self._status.get("queue_depth", 0)) if self._connection else 0

    def stats(self) -> dict[str, int]:
        """What the engine process last reported of its generations (see
        ``LlamaCppEngine.stats``): running now, and with batching its decode steps, the tokens
        they decoded and the sequences in them. Empty before it has said anything."""
        stats = self._status.get("stats") if self._connection else None
        return {k: int(v) for k, v in stats.items()} if isinstance(stats, dict) else {}

    def loaded(self) -> list[LoadedModel]:
        if self._connection is None:
            return []
        return [wire.loaded_from_wire(m) for m in self._status.get("loaded", [])]

    async def aloaded(self) -> list[LoadedModel]:
        """What is loaded now, asked of the engine process (``loaded()`` is what it last
        reported, which may be a moment old). Starts no engine process to answer."""
        connection = self._connection
        if connection is None or connection.lost is not None:
            return []
        try:
            self._status = await self._call("status", {})
        except BillumyError:
            return []
        return self.loaded()

    def runner(self) -> dict[str, Any]:
        """The engine process's state: ``idle``, ``running``, ``restarting`` or ``failed``,
        with its pid, restarts so far and what stopped the last one."""
        status = read_status(self.socket_path)
        return {
            "state": status.get("state", "unknown"),
            "pid": status.get("pid"),
            "restarts": status.get("restarts", 0),
            "last_exit": (status.get("last_exit") or {}).get("reason"),
            "message": status.get("message") if status.get("state") != "running" else None,
        }

    # --- the connection -----------------------------------------------------------------------

    async def _connect(self) -> _Connection:
        connection = self._connection
        if connection is not None and connection.lost is None:
            return connection
        async with self._connecting:
            if self._connection is not None and self._connection.lost is None:
                return self._connection
            self._connection = await self._open()
            return self._connection

    async def _open(self) -> _Connection:
        failed = read_status(self.socket_path)
        if failed.get("state") == "failed":
            raise EngineUnavailableError(str(failed.get("message")), retry_after=60)
        try:
            reader, writer = await asyncio.open_unix_connection(
                str(self.socket_path), limit=wire.MAX_FRAME
            )
        except OSError as exc:
            raise EngineUnavailableError("the model runner is not running") from exc
        connection = _Connection(reader, writer)
        try:
            # The engine starts on the first connection (a few seconds) and after a crash.
            hello = await asyncio.wait_for(wire.read_frame(reader), self.start_timeout_s)
        except (TimeoutError, wire.FrameError, OSError) as exc:
            writer.close()
            raise EngineUnavailableError("the model runner did not start in time") from exc
        if hello is None or "hello" not in hello:
            writer.close()
            raise await self._stopped(None)
        connection.pid = int(hello["hello"]["pid"])
        connection.task = asyncio.get_running_loop().create_task(self._read(connection))
        return connection

    async def _read(self, connection: _Connection) -> None:
        try:
            while True:
                message = await wire.read_frame(connection.reader)
                if message is None:
                    break
                if "status" in message:
                    self._status = message["status"]
                    continue
                queue = connection.pending.get(message.get("id", -1))
                if queue is not None:
                    queue.put_nowait(message)
        except (wire.FrameError, ValueError, OSError) as exc:
            log.warning("engine connection broke", extra={"reason": str(exc)})
        finally:
            connection.lost = EngineUnavailableError("the model runner stopped; restarting")
            connection.writer.close()
            self._status = {"queue_depth": 0, "loaded": []}  # nothing is loaded in a new one
            try:
                connection.lost = await self._stopped(connection.pid)
            finally:
                for queue in connection.pending.values():
                    queue.put_nowait(_LOST)

    async def _stopped(self, pid: int | None) -> EngineUnavailableError:
        """The error for requests on a connection that ended: names the signal when the
        supervisor reports it (it notices the death a moment after the socket closes)."""
        deadline = time.monotonic() + 1.0
        while True:
            status = read_status(self.socket_path)
            last = status.get("last_exit") or {}
            if status.get("state") == "failed":
                return EngineUnavailableError(str(status.get("message")), retry_after=60)
            if pid is not None and last.get("pid") == pid:
                return EngineUnavailableError(
                    f"the model runner stopped: {last.get('reason')}; restarting"
                )
            if time.monotonic() > deadline:
                return EngineUnavailableError("the model runner stopped; restarting")
            await asyncio.sleep(0.02)

    # --- requests -----------------------------------------------------------------------------

    async def _call(self, op: str, args: dict[str, Any]) -> Any:
        connection = await self._connect()
        request_id, queue = connection.open()
        try:
            connection.send({"id": request_id, "op": op, "args": args})
            message = await queue.get()
        finally:
            connection.pending.pop(request_id, None)
        if message is _LOST:
            assert connection.lost is not None
            raise connection.lost
        if "error" in message:
            raise wire.error_from_wire(message["error"])
        return message["result"]

    async def generate(self, request: Generation) -> AsyncIterator[Chunk]:
        """Stream a generation. Closing the iterator cancels it in the engine process, which
        stops llama.cpp within a token."""
        connection = await self._connect()
        request_id, queue = connection.open()
        finished = False
        try:
            connection.send(
                {"id": request_id, "op": "generate", "args": wire.generation_to_wire(request)}
            )
            while True:
                message = await queue.get()
                if message is _LOST:
                    assert connection.lost is not None
                    raise connection.lost
                if "error" in message:
                    finished = True
                    raise wire.error_from_wire(message["error"])
                chunk = wire.chunk_from_wire(message["chunk"])
                if chunk.done:
                    finished = True
                    yield chunk
                    return
                chunk.more = not queue.empty()
                yield chunk
        finally:
            connection.pending.pop(request_id, None)
            if not finished and connection.lost is None:
                with contextlib.suppress(BillumyError, OSError):
                    connection.send({"id": request_id, "op": "cancel"})

    async def embed(
        self,
        *,
        model_path: Path,
        model_name: str,
        inputs: list[str],
        truncate: bool,
        num_ctx: int,
        keep_alive_s: float | None,
    ) -> Embeddings:
        result = await self._call(
            "embed",
            {
                "model_path": str(model_path),
                "model_name": model_name,
                "inputs": inputs,
                "truncate": truncate,
                "num_ctx": num_ctx,
                "keep_alive_s": keep_alive_s,
            },
        )
        return Embeddings(**result)

    async def load(
        self,
        model_path: Path,
        model_name: str,
        num_ctx: int,
        keep_alive_s: float | None,
        *,
        extend_only: bool = True,
    ) -> int:
        args = {
            "model_path": str(model_path),
            "model_name": model_name,
            "num_ctx": num_ctx,
            "keep_alive_s": keep_alive_s,
            "extend_only": extend_only,
        }
        return int(await self._call("load", args))

    async def unload(self, model_path: Path) -> None:
        await self._call("unload", {"model_path": str(model_path)})

    async def count_tokens(self, model_path: Path, texts: list[str]) -> list[int]:
        result = await self._call("count_tokens", {"model_path": str(model_path), "texts": texts})
        return [int(n) for n in result]

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        connection.writer.close()
        if connection.task is not None:
            connection.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await connection.task
