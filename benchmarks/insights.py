"""How long the deterministic half of insights takes: loading, profiling and salient facts.

For each size (10k, 100k and 1M rows by default) it writes one CSV of 10 columns to a
temporary folder: an id, a date over two years, three categorical columns (5, 40 and 4
values), four numeric ones (units, price, revenue, discount) and a free-text comment. Values
are pseudo-random but fixed: each is a DuckDB ``hash`` of the row number and a per-column
seed, so every run and every machine benchmarks the same file.

It then times, median of ``--runs`` runs each:

* load: ``data.from_file(path, "csv")`` (strict parse, typing, limits);
* profile: ``profile.profile(table)``;
* facts: ``salient.salient_facts(table, profile)``.

Then (unless ``--model-rows 0``) it starts a real ``billumy serve``, uploads the smallest CSV
as a dataset and asks ``--model-runs`` questions through ``POST /api/insights`` with the
embedded model, and prints where the time of a whole request goes (the server reports each
step in the record's ``timings``): loading and profiling against planning and narration by
the model.

The target: a million rows by 10 columns profiled in under 3 s on a 2-core machine (DuckDB
limited to 2 threads here, as in the service). Timings swing on a shared machine: run it
twice before trusting a figure.

Run from the repository root::

    .venv/bin/python benchmarks/insights.py
    .venv/bin/python benchmarks/insights.py --rows 10000,100000 --runs 5

This is a benchmark, not a test: it exits 0 whatever the figures, unless something crashed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from billumy.insights import data
from billumy.insights.profile import profile
from billumy.insights.salient import salient_facts

TARGET_ROWS = 1_000_000
TARGET_SECONDS = 3.0
UNLIMITED = data.Limits(
    max_rows=10_000_000,
    max_bytes=1 << 34,
    max_decoded_bytes=1 << 34,
    memory_limit_bytes=1 << 33,
    query_timeout_s=0,
)

# Every value derives from hash(row number, seed): fixed data, written by DuckDB in seconds.
GENERATOR = """
COPY (
    SELECT
        100000 + i AS order_id,
        DATE '2023-01-01' + CAST(hash(i, 1) % 730 AS INTEGER) AS order_date,
        ['Norte', 'Sul', 'Sudeste', 'Nordeste', 'Centro-Oeste'][pick(i, 2, 5)] AS region,
        'produto ' || CAST(hash(i, 3) % 40 AS VARCHAR) AS product,
        ['web', 'loja', 'app', 'telefone'][pick(i, 4, 4)] AS channel,
        units,
        price,
        round(units * price, 2) AS revenue,
        CAST(hash(i, 7) % 300 AS DOUBLE) / 1000 AS discount,
        'pedido ' || CAST(i AS VARCHAR) || ' ' || ['entrega atrasou', 'cliente satisfeito',
            'troca pedida', 'frete grátis', 'pagamento aprovado'][pick(i, 8, 5)] AS comment
    FROM (
        SELECT
            i,
            CAST(1 + hash(i, 5) % 20 AS INTEGER) AS units,
            round(5 + CAST(hash(i, 6) % 49500 AS DOUBLE) / 100, 2) AS price
        FROM range({rows}) AS t(i)
    )
    ORDER BY i
) TO '{path}' (FORMAT csv, HEADER true)
"""


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def make_csv(rows: int, folder: Path) -> Path:
    """The benchmark CSV of ``rows`` rows in ``folder`` (written once, then reused)."""
    path = folder / f"insights-{rows}.csv"
    if not path.exists():
        con = duckdb.connect()
        try:
            literal = str(path).replace("'", "''")
            # pick(i, seed, n): a fixed pseudo-random list index in 1..n for row i
            con.execute(
                "CREATE MACRO pick(i, seed, n) AS CAST(hash(i, seed) % n AS INTEGER) + 1"
            ).fetchall()
            con.execute(GENERATOR.format(rows=int(rows), path=literal)).fetchall()
        finally:
            con.close()
    return path


def median_seconds(work: Callable[[], Any], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def time_profile(
    rows: int, *, runs: int = 3, folder: Path | None = None, threads: int = 2
) -> dict[str, float]:
    """Seconds (median of ``runs``) to load, profile and find salient facts in a
    ``rows`` x 10 CSV; also its size in MB. Reusable by other benchmarks."""
    with tempfile.TemporaryDirectory(prefix="billumy-bench-") as tmp:
        path = make_csv(rows, folder or Path(tmp))
        size_mb = path.stat().st_size / 1e6

        def load() -> data.Table:
            return data.from_file(path, "csv", UNLIMITED, threads=threads)

        load_s = median_seconds(lambda: load().close(), runs)
        with load() as table:
            assert table.row_count == rows, table.row_count
            prof = profile(table)
            profile_s = median_seconds(lambda: profile(table), runs)
            facts_s = median_seconds(lambda: salient_facts(table, prof), runs)
    return {"mb": size_mb, "load": load_s, "profile": profile_s, "facts": facts_s}


def summarize(results: dict[int, dict[str, float]], runs: int) -> None:
    print()
    header = f"{'rows':>10}  {'CSV MB':>8}  {'load s':>8}  {'profile s':>10}  {'facts s':>8}"
    print(header)
    print("-" * len(header))
    for rows, t in results.items():
        print(
            f"{rows:>10,}  {t['mb']:>8.1f}  {t['load']:>8.3f}  {t['profile']:>10.3f}  "
            f"{t['facts']:>8.3f}"
        )
    print()
    print(f"median of {runs} runs each; 10 columns (id, date, 3 categorical, 4 numeric, text)")
    if TARGET_ROWS in results:
        seconds = results[TARGET_ROWS]["profile"]
        verdict = "ok" if seconds < TARGET_SECONDS else "ABOVE TARGET"
        print(
            f"1M rows x 10 columns profiled in {seconds:.2f} s "
            f"(target < {TARGET_SECONDS:.0f} s): {verdict}"
        )


QUESTIONS = [
    "Which region has the highest revenue?",
    "Qual canal teve mais unidades vendidas?",
    "How did revenue change month by month?",
]


def model_share(csv_path: Path, runs: int) -> dict[str, float]:
    """Median seconds per step of real /api/insights requests on ``csv_path``."""
    import httpx

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.e2e.server import Server

    with tempfile.TemporaryDirectory(prefix="billumy-bench-srv-") as tmp:
        server = Server(data_dir=Path(tmp)).start()
        try:
            with httpx.Client(base_url=server.url, headers=server.headers, timeout=600) as c:
                upload = c.post(
                    "/datasets", files={"file": (csv_path.name, csv_path.read_bytes(), "text/csv")}
                )
                upload.raise_for_status()
                dataset = upload.json()["id"]
                laps: dict[str, list[float]] = {}
                for n in range(runs):
                    question = QUESTIONS[n % len(QUESTIONS)]
                    started = time.perf_counter()
                    answer = c.post(
                        "/api/insights",
                        json={
                            "dataset_id": dataset,
                            "question": question,
                            "max_insights": 2,
                            "narrative": True,  # the embedded model narrates only if asked
                        },
                    )
                    answer.raise_for_status()
                    laps.setdefault("total", []).append(time.perf_counter() - started)
                    for step, seconds in answer.json()["timings"].items():
                        laps.setdefault(step, []).append(float(seconds))
                    progress(f"  {question!r}: {laps['total'][-1]:.2f} s")
        finally:
            server.stop()
    return {step: statistics.median(values) for step, values in laps.items()}


def print_share(rows: int, share: dict[str, float]) -> None:
    total = share["total"]
    data_s = share.get("load", 0) + share.get("profile", 0) + share.get("facts", 0)
    model_s = share.get("plan", 0) + share.get("narrative", 0)
    print()
    print(f"one /api/insights request on {rows:,} rows (median), seconds:")
    for step, seconds in share.items():
        print(f"  {step:<18} {seconds:8.3f}  {100 * seconds / total:5.1f}%")
    print(
        f"data (load + profile + facts) {data_s:.2f} s = {100 * data_s / total:.1f}% of the "
        f"request; model (plan + narrative) {model_s:.2f} s = {100 * model_s / total:.1f}%"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows",
        default="10000,100000,1000000",
        help="comma-separated row counts (default: 10000,100000,1000000)",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per timing, median (3)")
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads (2)")
    parser.add_argument(
        "--model-rows",
        type=int,
        default=10_000,
        help="rows of the dataset asked about through a real server (10000; 0 skips)",
    )
    parser.add_argument("--model-runs", type=int, default=3, help="questions asked (3)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = [int(n.replace("_", "")) for n in args.rows.split(",") if n.strip()]
    results: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="billumy-bench-") as tmp:
        for rows in sizes:
            progress(f"{rows:,} rows: generating, then {args.runs} runs of each step")
            results[rows] = time_profile(
                rows, runs=args.runs, folder=Path(tmp), threads=args.threads
            )
            progress(f"  {results[rows]}")
        summarize(results, args.runs)
        if args.model_rows:
            progress(f"{args.model_rows:,} rows through a real server with the model")
            share = model_share(make_csv(args.model_rows, Path(tmp)), args.model_runs)
            print_share(args.model_rows, share)
    return 0


if __name__ == "__main__":
    sys.exit(main())
