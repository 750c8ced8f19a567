"""Prometheus metrics: what an operations team graphs and alerts on.

Counters and histograms are updated where things happen (the access middleware, the
inference service, the error handler); gauges that describe live state (queue depth, upstream
health, circuit breakers) are read from their owners at scrape time by a collector, so they
are never stale. Labels are bounded: routes are templates (``/chats/{chat_id}``), never raw
paths, and models and deployments come from configuration or the catalog.

With several workers (``billumy serve --workers N``) a scrape reaches one of them, yet every
number describes the whole server. Counters and histograms use prometheus-client's
multiprocess mode: ``serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh private directory
before the workers start, each writes its values to files there, and a scrape adds up every
worker's, those of workers that have exited included (so counters never go back). The live
values are each worker's own objects (its router's health checks and circuits, its maestro,
and what it last heard of the shared engine process), so each worker publishes them to that
directory every second and a scrape merges the running workers' (see ``merge``): in-flight and
served counts and tier decisions add up, the engine's queue depth and restarts are taken once,
circuit states count the workers in each state, and a deployment is healthy only when every
worker's last check passed. No multiprocess gauges are used, so no worker needs
``mark_process_dead``; a dead worker's published values are dropped at the next scrape. With
one worker nothing is written anywhere and a scrape reads the process itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_TTFT = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)
_RATE = (1, 5, 10, 25, 50, 100, 200, 400, 800, 1600)
_STATES = ("closed", "half_open", "open")
# Merging workers' health: a failed check outranks one not made yet, which outranks a pass.
_HEALTH_RANK = {0: 0, -1: 1, 1: 2}
_PUBLISH_S = 1.0
# The embedded engine's counters of its generations (see ``LlamaCppEngine.stats``).
_ENGINE_STATS = ("running", "steps", "batch_tokens", "batch_sequences")


def snapshot(live: dict[str, Any]) -> dict[str, Any]:
    """One process's live values (as ``Metrics.watch`` reads them) in a JSON-ready form."""
    deployments = [
        {
            "deployment": d["deployment"],
            "model": d["model"],
            "healthy": -1 if d["healthy"] is None else int(bool(d["healthy"])),
            "state": d["state"],
            "in_flight": d["in_flight"],
            "served": d["served"],
        }
        for d in live.get("deployments", [])
    ]
    tiers = [[*key, count] for key, count in live.get("tiers", {}).items()]
    engine = live.get("engine") or {}
    return {
        "queue_depth": live.get("queue_depth", 0),
        "deployments": deployments,
        "tiers": tiers,
        "engine_restarts": int(engine.get("restarts", 0)),
        "engine_up": 1 if engine.get("state") in ("idle", "running") else 0,
        "engine_stats": {k: int((live.get("engine_stats") or {}).get(k, 0)) for k in _ENGINE_STATS},
    }


def merge(snapshots: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The live values of several workers as one server's: queue depths, in-flight and served
    counts and tier decisions add up; ``states`` counts the workers whose circuit is in each
    state; ``healthy`` is 0 if any worker's last check failed, else -1 if any has not checked
    yet, else 1. The engine process is one for all workers: its queue depth, restarts, state
    and counters are the same in every snapshot, so the largest (newest) is taken. Of one
    worker, the same values as its own."""
    engine_stats = dict.fromkeys(_ENGINE_STATS, 0)
    queue = 0
    restarts = 0
    up = 1
    seen = False
    deployments: dict[str, dict[str, Any]] = {}
    tiers: dict[tuple[str, str, str], int] = {}
    for snap in snapshots:
        queue = max(queue, snap["queue_depth"])
        restarts = max(restarts, snap.get("engine_restarts", 0))
        for name, value in (snap.get("engine_stats") or {}).items():
            if name in engine_stats:
                engine_stats[name] = max(engine_stats[name], value)
        up = min(up, snap.get("engine_up", 1)) if seen else snap.get("engine_up", 1)
        seen = True
        for d in snap["deployments"]:
            total = deployments.setdefault(
                d["deployment"],
                {
                    "deployment": d["deployment"],
                    "model": d["model"],
                    "healthy": 1,
                    "states": dict.fromkeys(_STATES, 0),
                    "in_flight": 0,
                    "served": 0,
                },
            )
            total["healthy"] = min(total["healthy"], d["healthy"], key=_HEALTH_RANK.__getitem__)
            total["states"][d["state"]] = total["states"].get(d["state"], 0) + 1
            total["in_flight"] += d["in_flight"]
            total["served"] += d["served"]
        for model, tier, source, count in snap["tiers"]:
            tiers[(model, tier, source)] = tiers.get((model, tier, source), 0) + count
    return {
        "queue_depth": queue,
        "deployments": list(deployments.values()),
        "tiers": tiers,
        "engine_restarts": restarts,
        "engine_up": up,
        "engine_stats": engine_stats,
    }


def process_running(pid: int) -> bool:
    """Whether a process with this pid exists (ours or not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Live(Collector):
    """Gauges read at scrape time from the app's live objects, merged over workers."""

    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        live = self.read()
        queue = GaugeMetricFamily(
            "billumy_queue_depth", "Requests waiting for the embedded engine."
        )
        queue.add_metric([], live["queue_depth"])
        yield queue
        restarts = CounterMetricFamily(
            "billumy_engine_restarts",
            "Times the engine process stopped unexpectedly (a crash) and was restarted.",
        )
        restarts.add_metric([], live.get("engine_restarts", 0))
        yield restarts
        up = GaugeMetricFamily(
            "billumy_engine_up",
            "1 while the engine process is running or idle, 0 while it restarts or has failed.",
        )
        up.add_metric([], live.get("engine_up", 1))
        yield up
        stats = live.get("engine_stats") or {}
        running = GaugeMetricFamily(
            "billumy_engine_running_sequences",
            "Generations running in the embedded engine now: sequences in a batch (with "
            "BILLUMY_ENGINE_BATCHING), or contexts generating.",
        )
        running.add_metric([], stats.get("running", 0))
        yield running
        for name, key, text in (
            ("billumy_engine_batch_steps", "steps", "Batched decode steps of the engine."),
            (
                "billumy_engine_batch_tokens",
                "batch_tokens",
                "Tokens the batched decode steps evaluated, prompts and generated tokens "
                "(per step: rate over billumy_engine_batch_steps).",
            ),
            (
                "billumy_engine_batch_sequences",
                "batch_sequences",
                "Sequences in the batched decode steps, added up over the steps (the batch "
                "size: rate over billumy_engine_batch_steps).",
            ),
        ):
            counter = CounterMetricFamily(name, text)
            counter.add_metric([], stats.get(key, 0))
            yield counter
        healthy = GaugeMetricFamily(
            "billumy_upstream_healthy",
            "1 when the deployment's last health check passed (0 failed, -1 not checked).",
            labels=["deployment", "model"],
        )
        state = GaugeMetricFamily(
            "billumy_upstream_circuit_state",
            "1 for the deployment's current circuit-breaker state (with several workers: "
            "how many workers' circuits are in it).",
            labels=["deployment", "state"],
        )
        in_flight = GaugeMetricFamily(
            "billumy_upstream_in_flight",
            "Requests in flight per deployment.",
            labels=["deployment"],
        )
        served = CounterMetricFamily(
            "billumy_upstream_served",
            "Requests a deployment answered completely.",
            labels=["deployment"],
        )
        for d in live["deployments"]:
            healthy.add_metric([d["deployment"], d["model"]], d["healthy"])
            for name in _STATES:
                state.add_metric([d["deployment"], name], d["states"].get(name, 0))
            in_flight.add_metric([d["deployment"]], d["in_flight"])
            served.add_metric([d["deployment"]], d["served"])
        yield healthy
        yield state
        yield in_flight
        yield served
        tiers = CounterMetricFamily(
            "billumy_maestro_decisions",
            "Tier decisions of tiered model names, by how they were made.",
            labels=["model", "tier", "source"],
        )
        for (model, tier, source), count in live["tiers"].items():
            tiers.add_metric([model, tier, source], count)
        yield tiers


class Metrics:
    def __init__(self) -> None:
        # Set by ``billumy serve --workers N`` before this process imported prometheus_client:
        # then every counter and histogram is kept in files there (see the module docstring).
        self.multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        self._read: Callable[[], dict[str, Any]] | None = None
        self._publisher: asyncio.Task[None] | None = None
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "billumy_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "billumy_request_duration_seconds",
            "Time from request to the end of the response (streams included).",
            ["route"],
            buckets=_LATENCY,
            registry=r,
        )
        self.ttft = Histogram(
            "billumy_time_to_first_token_seconds",
            "Time from the start of a generation to its first piece of text.",
            ["model"],
            buckets=_TTFT,
            registry=r,
        )
        self.tokens = Counter(
            "billumy_tokens",
            "Tokens processed, by model and kind (prompt or completion).",
            ["model", "kind"],
            registry=r,
        )
        self.tokens_per_second = Histogram(
            "billumy_generation_tokens_per_second",
            "Completion tokens per second of each generation.",
            ["model"],
            buckets=_RATE,
            registry=r,
        )
        self.cache = Counter(
            "billumy_cache_lookups",
            "Response-cache lookups by result (hit, miss, bypass).",
            ["result"],
            registry=r,
        )
        self.rate_limited = Counter(
            "billumy_rate_limited",
            "Requests refused for a key's limits (429), by route.",
            ["route"],
            registry=r,
        )
        self.key_lookups = Counter(
            "billumy_key_lookups",
            "API keys looked up in the key store, by result (found, unknown); a key found in "
            "the in-process or unknown-key caches is not counted.",
            ["result"],
            registry=r,
        )
        self.routed = Counter(
            "billumy_routed",
            "Generations by the deployment that answered (embedded for the local engine).",
            ["deployment", "model"],
            registry=r,
        )
        self.outcomes = Counter(
            "billumy_backend_outcomes",
            "Attempts on a backend (generations and embeddings), by deployment (embedded for "
            "the local engine without deployments) and how they ended: completed, failed, or "
            "cancelled (the client went first). Each attempt is counted once, when it ends.",
            ["deployment", "outcome"],
            registry=r,
        )

    def watch(self, read: Callable[[], dict[str, Any]]) -> None:
        """Report live gauges read by ``read`` at each scrape; with several workers, also
        publish them every second for scrapes answered by the other workers."""
        self._read = read
        if self.multiprocess_dir is None:
            self.registry.register(_Live(lambda: merge([snapshot(read())])))
        else:
            self._publisher = asyncio.get_running_loop().create_task(self._publish_every())

    async def aclose(self) -> None:
        """Stop publishing this worker's live values and withdraw them."""
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
            self._publisher = None
            self._live_path(os.getpid()).unlink(missing_ok=True)

    def render(self) -> bytes:
        """The exposition text: this process's metrics, or with several workers all of them."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        registry.register(_Live(lambda: merge(self._workers())))
        return generate_latest(registry)

    def _live_path(self, pid: int) -> Path:
        assert self.multiprocess_dir is not None
        return Path(self.multiprocess_dir) / f"live_{pid}.json"

    def _publish(self) -> None:
        if self._read is None:
            return
        path = self._live_path(os.getpid())
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(orjson.dumps(snapshot(self._read())))
        os.replace(temporary, path)  # readers see the old values or the new, never half

    async def _publish_every(self) -> None:
        while True:
            try:
                self._publish()
            except OSError as exc:
                log.warning("could not publish live metrics", extra={"error": str(exc)})
            await asyncio.sleep(_PUBLISH_S)

    def _workers(self) -> list[dict[str, Any]]:
        """The live values of every running worker: this one's now, the others' at most
        ``_PUBLISH_S`` old."""
        self._publish()
        assert self.multiprocess_dir is not None
        snapshots = []
        for path in Path(self.multiprocess_dir).glob("live_*.json"):
            if not process_running(int(path.stem.removeprefix("live_"))):
                path.unlink(missing_ok=True)  # a worker that died without withdrawing them
                continue
            with contextlib.suppress(OSError, orjson.JSONDecodeError):
                snapshots.append(orjson.loads(path.read_bytes()))
        return snapshots
