"""The engine process: llama.cpp lives here and nowhere else.

Started by :class:`billumy.engines.supervisor.EngineSupervisor` with a listening Unix socket it
inherits (``--fd``); every API worker connects to it, so the weights are loaded once whatever the
number of workers. Each connection multiplexes requests by id (see :mod:`billumy.engines.wire`).
A native crash here ends this process only: the supervisor restarts it and the API processes
turn the lost connection into clear errors.

    python -m billumy.engines.host --fd 3 --threads 2 --num-parallel 1 --max-queue 512
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import gc
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvloop

from billumy import __version__, logs
from billumy.engines import wire
from billumy.engines.base import Chunk, closing
from billumy.engines.llamacpp import LlamaCppEngine
from billumy.errors import BadRequestError, BillumyError

log = logging.getLogger("billumy.engine")


class Connection:
    """One API process's connection: its requests run as tasks, their frames go back in order."""

    def __init__(
        self, engine: LlamaCppEngine, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.engine = engine
        self.reader = reader
        self.writer = writer
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.last_status: dict[str, Any] | None = None
        self._out: list[bytes] = []  # frames written together at the end of the loop's turn

    def send(self, message: dict[str, Any]) -> None:
        """Queue a frame; the frames of one turn of the event loop go out in one write.

        The chunks of a batched step (one per sequence) reach their tasks in the same turn:
        one write wakes the API process once, not once per sequence, and every system call
        here takes a core from llama.cpp's two threads in the middle of the next step."""
        if self.writer.is_closing():
            return
        if not self._out:
            asyncio.get_running_loop().call_soon(self._flush)
        self._out.append(wire.encode(message))

    def _flush(self) -> None:
        out, self._out = b"".join(self._out), []
        if not self.writer.is_closing():
            self.writer.write(out)

    def status(self) -> dict[str, Any]:
        return {
            "queue_depth": self.engine.queue_depth,
            "loaded": [wire.loaded_to_wire(m) for m in self.engine.loaded()],
            "stats": self.engine.stats(),
        }

    def send_status(self) -> None:
        status = self.status()
        if status != self.last_status:
            self.last_status = status
            self.send({"status": status})

    async def serve(self) -> None:
        self.send({"hello": {"pid": os.getpid(), "version": __version__}})
        self.send_status()
        try:
            while True:
                message = await wire.read_frame(self.reader)
                if message is None:
                    break
                self.dispatch(message)
        except (wire.FrameError, ValueError, ConnectionError) as exc:
            log.warning("engine connection dropped", extra={"reason": str(exc)})
        finally:
            for task in self.tasks.values():
                task.cancel()
            self.writer.close()

    def dispatch(self, message: dict[str, Any]) -> None:
        request_id = message.get("id")
        op = message.get("op")
        if not isinstance(request_id, int):
            raise wire.FrameError("a request needs an integer id")
        if op == "cancel":
            task = self.tasks.get(request_id)
            if task is not None:
                task.cancel()
            return
        args = message.get("args") or {}
        task = asyncio.get_running_loop().create_task(self.run(request_id, str(op), args))
        self.tasks[request_id] = task

    async def run(self, request_id: int, op: str, args: dict[str, Any]) -> None:
        try:
            if op == "generate":
                request = wire.generation_from_wire(args)
                async with closing(self.engine.generate(request)) as chunks:
                    await self.stream(request_id, chunks)
            else:
                result = await self.call(op, args)
                self.send_status()  # before the result: a caller that looks next sees it
                self.send({"id": request_id, "result": result})
        except asyncio.CancelledError:
            pass  # the client cancelled: closing() above stopped llama.cpp within a token
        except Exception as exc:  # every failure goes back to the client, typed
            if not isinstance(exc, BillumyError):
                log.exception("engine request failed", extra={"op": op})
            self.send({"id": request_id, "error": wire.error_to_wire(exc)})
        finally:
            self.tasks.pop(request_id, None)
            self.send_status()

    async def stream(self, request_id: int, chunks: AsyncIterator[Chunk]) -> None:
        async for chunk in chunks:
            self.send({"id": request_id, "chunk": wire.chunk_to_wire(chunk)})
            if chunk.done:
                break
            if self.writer.transport.get_write_buffer_size() > 1 << 20:
                await self.writer.drain()  # a client that stopped reading must not grow memory

    async def call(self, op: str, args: dict[str, Any]) -> Any:
        engine = self.engine
        if op == "embed":
            result = await engine.embed(
                model_path=Path(args["model_path"]),
                model_name=args["model_name"],
                inputs=list(args["inputs"]),
                truncate=bool(args["truncate"]),
                num_ctx=int(args["num_ctx"]),
                keep_alive_s=args.get("keep_alive_s"),
            )
            return {
                "vectors": result.vectors,
                "prompt_eval_count": result.prompt_eval_count,
                "total_duration": result.total_duration,
                "load_duration": result.load_duration,
            }
        if op == "load":
            return await engine.load(
                Path(args["model_path"]),
                args["model_name"],
                int(args["num_ctx"]),
                args.get("keep_alive_s"),
                extend_only=bool(args.get("extend_only", True)),
            )
        if op == "unload":
            await engine.unload(Path(args["model_path"]))
            return None
        if op == "count_tokens":
            return await engine.count_tokens(Path(args["model_path"]), list(args["texts"]))
        if op == "status":
            return self.status()
        if op == "ping":
            return os.getpid()
        raise BadRequestError(f"unknown engine operation {op!r}")


async def serve(sock: socket.socket, engine: LlamaCppEngine) -> None:
    connections: set[Connection] = set()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = Connection(engine, reader, writer)
        connections.add(connection)
        try:
            await connection.serve()
        finally:
            connections.discard(connection)

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    # Ctrl-C in a terminal reaches the whole process group; the supervisor decides when this
    # process stops (SIGTERM), so that it drains with the server rather than before it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    server = await asyncio.start_unix_server(accept, sock=sock)
    gc.collect()  # what startup built lives as long as the process (see DrainingServer)
    gc.freeze()
    log.info("engine process ready", extra={"version": __version__, "batching": engine.batching})
    try:
        while not stopping.is_set():
            # Status changes that no request reports (a model unloaded after keep_alive).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), 0.5)
            for connection in list(connections):
                connection.send_status()
            if os.getppid() != parent:
                log.warning("the server that started the engine process is gone; stopping")
                break
    finally:
        server.close()
        await engine.aclose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Billumy's engine process (started by serve).")
    parser.add_argument("--fd", type=int, required=True, help="inherited listening socket")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--num-parallel", type=int, default=1)
    parser.add_argument("--batching", action="store_true", help="one context, many sequences")
    parser.add_argument("--max-queue", type=int, default=512)
    parser.add_argument("--keep-alive", type=float, default=300.0)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logs.configure(args.log_level)
    # A native crash prints the Python stacks of every thread before the process dies with
    # the same signal, so the supervisor still sees (and names) it.
    faulthandler.enable()
    sock = socket.socket(fileno=args.fd)
    engine = LlamaCppEngine(
        threads=args.threads,
        num_parallel=args.num_parallel,
        batching=args.batching,
        max_queue=args.max_queue,
        keep_alive_s=args.keep_alive,
    )
    # uvloop, as the API process runs: its wake-ups and socket writes cost less CPU, which
    # here is taken from llama.cpp's threads.
    uvloop.run(serve(sock, engine))


if __name__ == "__main__":
    main()
