"""Response cache latency through the HTTP API: hit vs. miss, in-process vs. Redis state.

Starts two real ``billumy serve`` processes in one run, one with in-process state and one
with a private ``redis-server``, and sends the same greedy /api/generate requests to both over
a kept-alive connection: the first time each prompt is a miss (the model generates), then
repeated requests are hits. ``GET /health`` is measured too, as the HTTP floor. Target: a hit
answers in under 2 ms median with Redis.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.server import RedisServer, Server  # noqa: E402


def _ms(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(srv: Server, prompts: int, repeats: int, tokens: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"health": [], "miss": [], "hit": []}
    with httpx.Client(base_url=srv.url, headers=srv.headers, timeout=120) as client:
        for _ in range(20):  # warm the connection and the model
            client.get("/health")
        client.post(
            "/api/generate",
            json={
                "model": "smollm2-135m",
                "prompt": "warm up",
                "stream": False,
                "options": {"num_predict": 2},
            },
        )
        for i in range(prompts):
            body = {
                "model": "smollm2-135m",
                "prompt": f"Give me a fact about {i} {time.time_ns()}",
                "stream": False,
                "options": {"num_predict": tokens, "temperature": 0},
            }
            start = time.perf_counter()
            r = client.post("/api/generate", json=body)
            out["miss"].append(time.perf_counter() - start)
            assert r.headers["x-billumy-cache"] == "miss", r.headers
            for _ in range(repeats):
                start = time.perf_counter()
                r = client.post("/api/generate", json=body)
                out["hit"].append(time.perf_counter() - start)
                assert r.headers["x-billumy-cache"] == "hit", r.headers
                start = time.perf_counter()
                client.get("/health")
                out["health"].append(time.perf_counter() - start)
            print(f"  {srv.url}: prompt {i + 1}/{prompts}", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=10, help="distinct prompts (misses)")
    parser.add_argument("--repeats", type=int, default=30, help="hits per prompt")
    parser.add_argument("--tokens", type=int, default=32, help="num_predict of each request")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(Path(tmp) / "redis-data").start()
        servers = {
            "local": Server(data_dir=Path(tmp) / "local"),
            "redis": Server(data_dir=Path(tmp) / "redis", env={"BILLUMY_REDIS_URL": redis.url}),
        }
        results: dict[str, dict[str, list[float]]] = {}
        try:
            for name, srv in servers.items():
                print(f"starting the {name} server", file=sys.stderr)
                srv.start()
                results[name] = measure(srv, args.prompts, args.repeats, args.tokens)
                srv.stop()
        finally:
            for srv in servers.values():
                srv.stop()
            redis.stop()
    print(
        f"\n{args.prompts} prompts x {args.repeats} hits, num_predict {args.tokens}, "
        "kept-alive HTTP/1.1 connection"
    )
    print(f"{'backend':<8} {'what':<8} {'p50 ms':>9} {'p95 ms':>9} {'n':>6}")
    for name, res in results.items():
        for what in ("health", "hit", "miss"):
            samples = res[what]
            print(
                f"{name:<8} {what:<8} {_ms(samples, 0.5):>9.2f} {_ms(samples, 0.95):>9.2f} "
                f"{len(samples):>6}"
            )
    for name, res in results.items():
        hit = statistics.median(res["hit"])
        miss = statistics.median(res["miss"])
        floor = statistics.median(res["health"])
        print(
            f"ratio {name}: miss/hit {miss / hit:.0f}x; hit - /health floor "
            f"{1000 * (hit - floor):.2f} ms"
        )
    hit_redis = 1000 * statistics.median(results["redis"]["hit"])
    verdict = "ok" if hit_redis < 2.0 else "ABOVE TARGET"
    print(f"target: redis hit p50 {hit_redis:.2f} ms < 2 ms: {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
