"""Prometheus metrics: what an operations team graphs and alerts on.

Counters and histograms are updated where things happen (the access middleware, the
inference service, the error handler); gauges that describe live state (queue depth, upstream
health, circuit breakers) are read from their owners at scrape time by a collector, so they
are never stale. Labels are bounded: routes are templates (``/chats/{chat_id}``), never raw
paths, and models and deployments come from configuration or the catalog.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_TTFT = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)
_RATE = (1, 5, 10, 25, 50, 100, 200, 400, 800, 1600)
_STATES = ("closed", "half_open", "open")


class _Live(Collector):
    """Gauges read at scrape time from the app's live objects."""

    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        live = self.read()
        queue = GaugeMetricFamily(
            "billumy_queue_depth", "Requests waiting for the embedded engine."
        )
        queue.add_metric([], live.get("queue_depth", 0))
        yield queue
        healthy = GaugeMetricFamily(
            "billumy_upstream_healthy",
            "1 when the deployment's last health check passed (0 failed, -1 not checked).",
            labels=["deployment", "model"],
        )
        state = GaugeMetricFamily(
            "billumy_upstream_circuit_state",
            "1 for the deployment's current circuit-breaker state.",
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
        for d in live.get("deployments", []):
            flag = -1 if d["healthy"] is None else int(bool(d["healthy"]))
            healthy.add_metric([d["deployment"], d["model"]], flag)
            for name in _STATES:
                state.add_metric([d["deployment"], name], int(d["state"] == name))
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
        for (model, tier, source), count in live.get("tiers", {}).items():
            tiers.add_metric([model, tier, source], count)
        yield tiers


class Metrics:
    def __init__(self) -> None:
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
        self.routed = Counter(
            "billumy_routed",
            "Generations by the deployment that answered (embedded for the local engine).",
            ["deployment", "model"],
            registry=r,
        )

    def watch(self, read: Callable[[], dict[str, Any]]) -> None:
        """Report live gauges read by ``read`` at each scrape."""
        self.registry.register(_Live(read))

    def render(self) -> bytes:
        return generate_latest(self.registry)
