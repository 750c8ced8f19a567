"""Live gauges merged over workers (the multi-worker scrape itself: tests/e2e/test_workers.py)."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from billumy.metrics import Metrics, merge, snapshot


def _live(
    state: str,
    healthy: bool | None,
    in_flight: int,
    queue: int,
    engine: dict[str, Any] | None = None,
) -> dict[str, Any]:
    deployment = {
        "deployment": "gpu-a",
        "model": "llama3",
        "provider": "ollama",
        "state": state,
        "healthy": healthy,
        "in_flight": in_flight,
        "waiting": 0,
        "served": 10 + in_flight,
    }
    tiers = {("maestro:latest", "simple", "rules"): 2}
    live = {"queue_depth": queue, "deployments": [deployment], "tiers": tiers}
    return {**live, "engine": engine} if engine is not None else live


def test_one_worker_is_reported_as_it_is() -> None:
    merged = merge([snapshot(_live("half_open", None, 3, 4))])
    assert merged["queue_depth"] == 4
    [d] = merged["deployments"]
    assert d["healthy"] == -1
    assert d["states"] == {"closed": 0, "half_open": 1, "open": 0}
    assert (d["in_flight"], d["served"]) == (3, 13)
    assert merged["tiers"] == {("maestro:latest", "simple", "rules"): 2}


def test_workers_add_up_and_count_circuit_states() -> None:
    workers = [
        _live("closed", True, 1, 2),
        _live("open", False, 0, 0),
        _live("closed", None, 2, 1),
    ]
    merged = merge(snapshot(w) for w in workers)
    # One engine process serves every worker: its queue is counted once, not once per worker.
    assert merged["queue_depth"] == 2
    [d] = merged["deployments"]
    assert d["states"] == {"closed": 2, "half_open": 0, "open": 1}
    assert (d["in_flight"], d["served"]) == (3, 33)
    assert d["healthy"] == 0  # one worker's check failed
    assert merged["tiers"] == {("maestro:latest", "simple", "rules"): 6}


def test_health_merges_to_unchecked_before_passed() -> None:
    def healthy(*flags: bool | None) -> int:
        merged = merge(snapshot(_live("closed", flag, 0, 0)) for flag in flags)
        return int(merged["deployments"][0]["healthy"])

    assert healthy(True, True) == 1
    assert healthy(True, None) == -1
    assert healthy(None, False, True) == 0


def test_single_process_scrape_reads_the_live_objects() -> None:
    metrics = Metrics()
    assert metrics.multiprocess_dir is None
    metrics.watch(lambda: _live("open", False, 1, 5))
    metrics.requests.labels("/api/tags", "GET", "200").inc()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
    }
    tags = (("method", "GET"), ("route", "/api/tags"), ("status", "200"))
    assert samples[("billumy_requests_total", tags)] == 1
    assert samples[("billumy_queue_depth", ())] == 5
    circuit = "billumy_upstream_circuit_state"
    assert samples[(circuit, (("deployment", "gpu-a"), ("state", "open")))] == 1
    assert samples[(circuit, (("deployment", "gpu-a"), ("state", "closed")))] == 0
    assert (
        samples[("billumy_upstream_healthy", (("deployment", "gpu-a"), ("model", "llama3")))] == 0
    )
    assert samples[("billumy_upstream_served_total", (("deployment", "gpu-a"),))] == 11


def test_engine_restarts_and_state_are_the_shared_engine_s() -> None:
    running = {"state": "running", "restarts": 2}
    restarting = {"state": "restarting", "restarts": 3}
    merged = merge(
        snapshot(_live("closed", True, 0, 0, engine)) for engine in (running, restarting)
    )
    assert (merged["engine_restarts"], merged["engine_up"]) == (3, 0)
    metrics = Metrics()
    metrics.watch(lambda: _live("closed", True, 0, 0, {"state": "failed", "restarts": 5}))
    samples = {
        s.name: s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
    }
    assert samples["billumy_engine_restarts_total"] == 5
    assert samples["billumy_engine_up"] == 0
