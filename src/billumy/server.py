"""How ``billumy serve`` runs the app: in its own process, or as a supervisor of workers.

With ``workers`` above 1, uvicorn's supervisor binds the port once and starts that many spawned
worker processes that accept on it; each builds its own app from the settings (its own store
pool and router), all of them use one engine process (started and supervised here), and they
share limits, cache and conversation windows through Redis and everything stored through the
database. SIGTERM or SIGINT to the supervisor reaches every
worker, and each drains like a single process does (see ``DrainingServer``).
"""

from __future__ import annotations

import functools
import gc
import os
import socket
import tempfile
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn
from uvicorn.supervisors import multiprocess

from billumy.drain import Drain
from billumy.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

_MULTIPROC_VARS = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")


class ServeConfig(uvicorn.Config):
    """uvicorn's configuration of Billumy's app; it travels to each worker with its settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Begun by the server that runs the app (DrainingServer), checked by the app's streams;
        # a worker gets its own copy with the rest of the configuration.
        self.drain = Drain()
        super().__init__(
            # A factory, so that each worker process builds its own app.
            functools.partial(build_app, settings, self.drain),
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_config=None,
            access_log=False,
            # X-Forwarded-For is honoured only from settings.trusted_proxies (a middleware in
            # create_app), not from uvicorn's FORWARDED_ALLOW_IPS default.
            proxy_headers=False,
            timeout_graceful_shutdown=int(settings.shutdown_grace) + 10,
        )


class DrainingServer(uvicorn.Server):
    """uvicorn's server; told to stop, it stops accepting at once, running streams get the
    grace period (``shutdown_grace``) and then end with an in-band error line."""

    def __init__(self, config: ServeConfig) -> None:
        super().__init__(config)
        self.grace = config.settings.shutdown_grace
        self.drain = config.drain

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.drain.begin(self.grace)
        super().handle_exit(sig, frame)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # What startup built (the app, its services, every module imported) lives as long as
        # the process: frozen out of the collector's way, a full collection scans only what
        # requests leave behind. A full collection of that heap took 80-95 ms here, and it
        # pauses the event loop, with every tenant's requests.
        gc.collect()
        gc.freeze()


class WorkerProcess(multiprocess.Process):
    """A worker of uvicorn's supervisor whose server is a ``DrainingServer``."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            assert isinstance(self.config, ServeConfig)
            self._server = DrainingServer(self.config)
        return self._server


def build_app(settings: Settings, drain: Drain | None = None) -> FastAPI:
    """The app, built in the process that serves it (a spawned worker starts with nothing)."""
    from billumy import logs
    from billumy.app import create_app

    logs.configure(settings.log_level)
    return create_app(settings, drain=drain)


def run(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, in this process or in ``settings.workers`` workers."""
    config = ServeConfig(settings)
    if settings.workers == 1:
        # One process reads its own metrics: a stray variable must not switch it to files.
        for name in _MULTIPROC_VARS:
            os.environ.pop(name, None)
        DrainingServer(config).run()
        return
    from billumy.app import engine_options
    from billumy.engines.supervisor import EngineSupervisor

    # One engine process for all workers: the weights are loaded once, and a crash in it
    # costs the requests in flight, never a worker. Started on the first worker's connection.
    supervisor = None
    if settings.engine_socket is None:
        supervisor = EngineSupervisor(engine_options(settings))
        supervisor.start()
        settings = settings.model_copy(update={"engine_socket": supervisor.socket_path})
        config = ServeConfig(settings)
    try:
        _run_workers(config)
    finally:
        if supervisor is not None:
            supervisor.stop()


def _run_workers(config: ServeConfig) -> None:
    with tempfile.TemporaryDirectory(prefix="billumy-metrics-") as metrics_dir:
        # Read by prometheus-client in each worker as it starts: counters and histograms go
        # to files here, and a scrape of any worker adds up all of them (see metrics.py).
        os.environ.pop("prometheus_multiproc_dir", None)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        # uvicorn's supervisor makes its workers (at start, on restarts, on SIGHUP and
        # SIGTTIN) from this module's Process, whose server would be a plain uvicorn.Server.
        multiprocess.Process = WorkerProcess  # type: ignore[misc]
        sock = config.bind_socket()
        try:
            multiprocess.Multiprocess(config, sockets=[sock]).run()
        finally:
            sock.close()
