"""Questions about a PostgreSQL source of millions of rows against the same questions on an
uploaded copy, through a real ``billumy serve``.

It makes a fresh database on the local PostgreSQL (127.0.0.1:5432, user postgres, dropped at
the end unless ``--keep``) with the Django-like shop of ``tests/sources_data.py``: ``--rows``
orders (10 million by default) from ``generate_series``, stores, products and the view
``vendas_detalhe`` that joins them. A server is started with that database as the
``[[sources]]`` entry ``shop`` (its URL from the environment; the orders with their declared
joins to the stores and products), and asked the evaluation set's question kinds (top, total
in a period, trend, anomaly, share, period comparison; pt-BR and English) about the orders
(``--table vendas_detalhe``: the view), without narrative: once each of ``shop_cold``, the
same source with nothing reused between questions (every question reads the table), then
``--runs`` times each of ``shop``, where a later question reuses what the first read while
the tables show no write. For each it prints the time to the answer (p50, p95), the server's
RSS growth while answering (its peak, sampled from /proc every 10 ms, over its RSS after one
warm-up question, whose own time is printed too) and the server's own timings per step, and
checks every number of every fact (aggregates, summaries, breakdowns, top and bottom
segments, trends, period changes, anomaly scans) and each profile's row count against the
same aggregate computed by a direct SQL query on the view.

The baseline, in the same run and on the same server: the same questions on an uploaded copy
(Parquet, ``POST /datasets``) of as many rows as the default upload limits accept
(``max_dataset_rows``, 50 MB); when that is fewer than ``--rows``, the ratio is also given per
row. The issue's targets: the answer in under 3 s p50 on 10 million rows, RSS growth under
100 MB, every fact equal to the direct query.

Run from the repository root::

    .venv/bin/python benchmarks/sources.py --rows 1000000
    .venv/bin/python benchmarks/sources.py             # 10 million rows, minutes to build
    .venv/bin/python benchmarks/sources.py --keep      # ... and keep the database; then
    .venv/bin/python benchmarks/sources.py --database billumy_bench_sources_... # reuse it

This is a benchmark, not a test: it exits 0 whatever the figures, unless something crashed
(or 1 when a fact disagrees with the direct query).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import httpx
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.e2e.server import Server
from tests.sources_data import SHOP_JOINS, build_postgres, source_toml

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TABLE = "vendas_detalhe"
UPLOAD_MAX_ROWS = 1_000_000  # the default max_dataset_rows
UPLOAD_MAX_BYTES = 50 * 1024 * 1024  # the default max_dataset_bytes
TARGET_ROWS = 10_000_000
TARGET_SECONDS = 3.0
TARGET_RSS_MB = 100.0
DIMENSIONS = ("loja", "cidade", "categoria", "canal", "status")

# (kind, language, question): the kinds of evals/insights/cases.toml, about the shop's view.
QUESTIONS = [
    ("top", "pt", "Qual loja vendeu mais?"),
    ("top", "en", "Which canal had the highest valor?"),
    ("total+period", "pt", "Qual foi o total de valor em 2024?"),
    ("total+period", "en", "What was the total valor in 2025?"),
    ("trend", "pt", "Como o valor evoluiu mês a mês?"),
    ("trend", "en", "How did valor change month by month?"),
    ("anomaly", "pt", "Alguma loja teve queda forte no valor?"),
    ("anomaly", "en", "Was any month abnormal for valor?"),
    ("share", "pt", "Qual a participação da loja Centro no valor total?"),
    ("share", "en", "What share of valor came from site?"),
    ("comparison", "pt", "Compare o valor de 2024 com o de 2025."),
    ("comparison", "en", "How did valor in the first half of 2025 compare with 2024?"),
]


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def fresh_database(existing: str | None = None, *, keep: bool = False) -> Iterator[str]:
    """A new database on the local PostgreSQL (its URL), dropped afterwards unless ``keep``;
    or ``existing``, reused and kept."""
    if existing is not None:
        if not re.fullmatch(r"[a-z0-9_]+", existing):
            raise SystemExit(f"--database {existing!r}: a plain database name")
        yield f"postgresql://postgres@127.0.0.1:5432/{existing}"
        return
    name = f"billumy_bench_sources_{secrets.token_hex(4)}"
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        if keep:
            progress(f"kept the database {name} (reuse it with --database {name})")
        else:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def build(url: str, rows: int) -> None:
    started = time.perf_counter()

    def told(done: int) -> None:
        elapsed = time.perf_counter() - started
        progress(f"  {done:>12,} / {rows:,} orders written ({elapsed:.0f} s)")

    progress(f"building {rows:,} orders in PostgreSQL (generate_series)")
    build_postgres(url, rows, chunk=max(100_000, min(1_000_000, rows // 10)), progress=told)
    progress(f"  built and analyzed in {time.perf_counter() - started:.0f} s")


def export_parquet(engine: sa.Engine, rows: int, folder: Path) -> Path:
    """The first ``rows`` rows of the view as a Parquet file (typed as in PostgreSQL)."""
    csv_path, parquet = folder / "copy.csv", folder / "vendas_detalhe.parquet"
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        copy_sql = (
            f"COPY (SELECT * FROM {TABLE} ORDER BY id LIMIT {int(rows)}) TO STDOUT WITH CSV HEADER"  # noqa: S608
        )
        with csv_path.open("wb") as out, cursor.copy(copy_sql) as copy:
            for block in copy:
                out.write(block)
    finally:
        raw.close()
    con = duckdb.connect()
    try:
        typed = "types = {'valor': 'DECIMAL(12,2)', 'criado_em': 'DATE'}"
        sql = f"SELECT * FROM read_csv('{csv_path}', header = true, {typed})"  # noqa: S608
        con.execute(f"COPY ({sql}) TO '{parquet}' (FORMAT parquet)").fetchall()
    finally:
        con.close()
    csv_path.unlink()
    return parquet


class RssPeak:
    """The peak RSS of one process, sampled from /proc every 10 ms while in use."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.base = self.peak = self.now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def now(self) -> int:
        status = Path(f"/proc/{self.pid}/status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        return int(match.group(1)) * 1024 if match else 0

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, self.now())

    def __enter__(self) -> RssPeak:
        self.base = self.peak = self.now()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.base) / 1e6


@dataclass
class Phase:
    """Seconds per question, and the last answer to each."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    steps: dict[str, list[float]] = field(default_factory=dict)  # the server's own timings
    rss_mb: float = 0.0
    first: float = 0.0  # the warm-up question: the first to read the table


def ask_all(client: httpx.Client, pid: int, target: dict[str, str], runs: int) -> Phase:
    phase = Phase()
    started = time.perf_counter()
    warm = client.post("/api/insights", json={**target, "question": "Quantas linhas?"})
    warm.raise_for_status()
    phase.first = time.perf_counter() - started
    with RssPeak(pid) as rss:
        for _, _, question in QUESTIONS:
            for _ in range(runs):
                started = time.perf_counter()
                got = client.post(
                    "/api/insights", json={**target, "question": question, "narrative": False}
                )
                elapsed = time.perf_counter() - started
                if got.status_code != 200:
                    raise RuntimeError(f"{question!r}: {got.status_code} {got.text[:300]}")
                phase.seconds.setdefault(question, []).append(elapsed)
                phase.answers[question] = got.json()
                for step, seconds in got.json().get("timings", {}).items():
                    phase.steps.setdefault(step, []).append(float(seconds))
            progress(f"  {question!r}: p50 {statistics.median(phase.seconds[question]):.2f} s")
    phase.rss_mb = rss.growth_mb
    return phase


def config(data_dir: Path) -> None:
    """The shop as a Django app's database is configured: the orders with their declared
    foreign keys to the stores and products (and the view, for ``--table vendas_detalhe``);
    ``shop_cold`` is the same with nothing reused between questions (``reuse_seconds = 0``)."""
    tables = [
        ("vendas_pedido", {"mask": ["cliente_email"]}),
        "vendas_loja",
        "vendas_produto",
        TABLE,
    ]
    options = {"url_env": "SHOP_DATABASE_URL", "statement_timeout": 120}
    text = source_toml("shop", tables, SHOP_JOINS, **options)
    text += source_toml("shop_cold", tables, SHOP_JOINS, reuse_seconds=0, **options)
    (data_dir / "billumy.toml").write_text(text)


def run(url: str, rows: int, runs: int, table: str) -> tuple[Phase, Phase, Phase, int]:
    """Both phases on one server: the source, then the uploaded copy (and its rows)."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with tempfile.TemporaryDirectory(prefix="billumy-bench-sources-") as tmp:
        data_dir = Path(tmp)
        config(data_dir)
        upload_rows = min(rows, UPLOAD_MAX_ROWS)
        progress(f"exporting {upload_rows:,} rows to Parquet for the upload")
        parquet = export_parquet(engine, upload_rows, data_dir)
        size = parquet.stat().st_size
        if size > UPLOAD_MAX_BYTES:
            raise RuntimeError(f"the Parquet copy is {size:,} bytes, over the upload limit")
        server = Server(data_dir=data_dir, env={"SHOP_DATABASE_URL": url}).start(timeout=120)
        try:
            assert server.proc is not None
            pid = server.proc.pid
            with httpx.Client(base_url=server.url, headers=server.headers, timeout=600) as c:
                progress(f"cold: {len(QUESTIONS)} questions x 1, nothing reused")
                cold = ask_all(c, pid, {"source": "shop_cold", "table": table}, 1)
                progress(f"source: {len(QUESTIONS)} questions x {runs} on {rows:,} rows")
                source = ask_all(c, pid, {"source": "shop", "table": table}, runs)
                uploaded = c.post("/datasets", files={"file": (parquet.name, parquet.read_bytes())})
                uploaded.raise_for_status()
                dataset = {"dataset_id": uploaded.json()["id"]}
                progress(f"upload: {len(QUESTIONS)} questions x {runs} on {upload_rows:,} rows")
                upload = ask_all(c, pid, dataset, runs)
        finally:
            server.stop()
    engine.dispose()
    return cold, source, upload, upload_rows


class Checker:
    """Each fact's numbers against the same aggregate by a direct query on the source."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.checked = 0
        self.unchecked: set[str] = set()
        self.mismatches: list[str] = []
        self._cache: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        key = (sql, *params)
        if key not in self._cache:
            with self.engine.connect() as conn:
                rows = conn.exec_driver_sql(sql, tuple(params)).fetchall()
            self._cache[key] = [tuple(r) for r in rows]
        return self._cache[key]

    def same(self, where: str, got: Any, expected: Any) -> None:
        self.checked += 1
        if got is None or abs(float(got) - float(expected)) > 1e-6 * max(1.0, abs(float(expected))):
            self.mismatches.append(f"{where}: got {got}, direct SQL {expected}")

    def fact(self, question: str, fact: dict[str, Any]) -> None:
        kind, columns, where = fact["kind"], fact["columns"], f"{question!r} {fact['id']}"
        check = getattr(self, "_" + kind, None)
        if check is None or not set(columns) <= {*DIMENSIONS, "criado_em", "valor", "quantidade"}:
            self.unchecked.add(kind)
            return
        check(where, fact)

    def _aggregate(self, where: str, fact: dict[str, Any]) -> None:
        measure = fact["columns"][0]
        params = fact.get("params") or []
        span = " WHERE criado_em >= %s AND criado_em < %s" if params else ""
        for key, value in fact["values"].items():
            agg = key.split("_")[0]
            if agg not in ("sum", "avg", "count", "min", "max"):
                self.unchecked.add(f"aggregate {key}")
                continue
            sql = f"SELECT {agg}({measure}) FROM {TABLE}{span}"  # noqa: S608 - allow-listed
            (expected,) = self.query(sql, *params)[0]
            self.same(f"{where} {key}", value, expected)

    def _summary(self, where: str, fact: dict[str, Any]) -> None:
        measure = fact["columns"][0]
        sql = f"SELECT sum({measure}), avg({measure}), min({measure}), max({measure}), "
        sql += f"count({measure}) FROM {TABLE}"
        expected = dict(
            zip(("total", "mean", "min", "max", "count"), self.query(sql)[0], strict=True)
        )
        for key, value in fact["values"].items():
            if key in expected:
                self.same(f"{where} {key}", value, expected[key])

    def _segments(self, where: str, fact: dict[str, Any]) -> None:
        dim, measure = fact["columns"][:2]
        sql = f"SELECT {dim}, sum({measure}) FROM {TABLE} GROUP BY 1"  # noqa: S608 - allow-listed
        rows = self.query(sql)
        totals = dict(rows)
        whole = sum(totals.values())
        for row in fact["rows"]:
            value = row.get(f"sum_{measure}", row.get(measure))
            self.same(f"{where} {row[dim]}", value, totals.get(row[dim]))
            if "share_pct" in row:
                share = 100 * float(totals.get(row[dim]) or 0) / float(whole)
                self.same(f"{where} {row[dim]} share_pct", row["share_pct"], share)

    _breakdown = _top_segment = _bottom_segment = _segments

    def _trend(self, where: str, fact: dict[str, Any]) -> None:
        measure = fact["columns"][1]
        month = "to_char(criado_em, 'YYYY-MM')"
        sql = f"SELECT {month}, sum({measure}) FROM {TABLE} GROUP BY 1"  # noqa: S608
        monthly = dict(self.query(sql))  # the names in sql: allow-listed in fact()
        for row in fact["rows"]:
            # "sum_valor", or "valor" in a series of several measures
            value = row.get(f"sum_{measure}", row.get(measure))
            if str(row["period"]) in monthly:
                self.same(f"{where} {row['period']}", value, monthly[row["period"]])
            else:
                self.mismatches.append(f"{where} {row['period']}: no such month in direct SQL")

    def _change(self, where: str, fact: dict[str, Any]) -> None:
        dim, _, measure = fact["columns"]
        a_lo, a_hi, b_lo, b_hi = fact["params"]
        span = "FILTER (WHERE criado_em >= %s AND criado_em < %s)"
        sql = f"SELECT {dim}, sum({measure}) {span}, sum({measure}) {span} FROM {TABLE}"  # noqa: S608
        sql += " GROUP BY 1"  # the names in sql: allow-listed in fact()
        by_segment = {r[0]: r[1:] for r in self.query(sql, a_lo, a_hi, b_lo, b_hi)}
        self.same(
            f"{where} value_a", fact["values"]["value_a"], sum(v[0] for v in by_segment.values())
        )
        self.same(
            f"{where} value_b", fact["values"]["value_b"], sum(v[1] for v in by_segment.values())
        )
        for row in fact["rows"]:
            a, b = by_segment.get(row["segment"], (None, None))
            self.same(f"{where} {row['segment']} value_a", row["value_a"], a)
            self.same(f"{where} {row['segment']} value_b", row["value_b"], b)

    def _anomaly(self, where: str, fact: dict[str, Any]) -> None:
        dim = fact["values"].get("dimension")
        self.same(f"{where} count", fact["values"]["count"], len(fact["rows"]))
        if dim in DIMENSIONS:
            # Months checked: whole ones; the last month, cut short by the data, is left out.
            month = "date_trunc('month', criado_em)"
            whole = f"{month} + interval '1 month' - interval '1 day' <= (SELECT max(criado_em) "
            sql = f"SELECT count(DISTINCT {dim}), count(DISTINCT {month}) FILTER (WHERE {whole}"
            segments, periods = self.query(f"{sql} FROM {TABLE})) FROM {TABLE}")[0]
            self.same(f"{where} segments", fact["values"]["segments"], segments)
            self.same(f"{where} periods", fact["values"]["periods"], periods)


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def report(
    rows: int, cold: Phase, source: Phase, upload: Phase, upload_rows: int, checker: Checker
) -> None:
    per_row = rows != upload_rows
    print()
    print(f"source: {rows:,} rows in PostgreSQL; upload: {upload_rows:,} rows (Parquet dataset)")
    if per_row:
        print(
            f"  ({rows:,} rows exceed the upload limits (max_dataset_rows {UPLOAD_MAX_ROWS:,}, "
            f"{UPLOAD_MAX_BYTES // 2**20} MB): the per-row ratio scales the upload by "
            f"{rows / upload_rows:.1f})"
        )
    print(
        "source: a later question reuses the aggregate read by the first while the tables show "
        "no write; cold: nothing reused (reuse_seconds = 0), every question reads the table"
    )
    header = f"{'kind':<13} {'lang':<4} {'cold':>6} {'source p50':>10} {'p95':>6} "
    header += f"{'upload p50':>10} {'ratio':>6}" + (f" {'per row':>8}" if per_row else "")
    print(header)
    print("-" * len(header))
    all_source: list[float] = []
    for kind, lang, question in QUESTIONS:
        s, u = source.seconds[question], upload.seconds[question]
        all_source += s
        ratio = statistics.median(s) / statistics.median(u)
        line = f"{kind:<13} {lang:<4} {statistics.median(cold.seconds[question]):>6.2f} "
        line += f"{statistics.median(s):>10.2f} {p95(s):>6.2f} "
        line += f"{statistics.median(u):>10.2f} {ratio:>6.2f}"
        if per_row:
            line += f" {ratio * upload_rows / rows:>8.3f}"
        print(line)
    p50 = statistics.median(all_source)
    all_cold = [x for v in cold.seconds.values() for x in v]
    cold_p50 = statistics.median(all_cold)
    print(f"all questions: source p50 {p50:.2f} s, p95 {p95(all_source):.2f} s")
    print(f"all questions, cold: p50 {cold_p50:.2f} s, p95 {p95(all_cold):.2f} s")
    print(
        f"first question of the source (sample and aggregate read): {source.first:.2f} s; "
        f"of the cold source: {cold.first:.2f} s; of the upload: {upload.first:.2f} s"
    )
    for name, phase in (("source", source), ("upload", upload)):
        steps = ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in phase.steps.items())
        print(f"server timings, median s per question ({name}): {steps}")
    print(
        f"server RSS growth (peak over start): source {source.rss_mb:.1f} MB, "
        f"cold {cold.rss_mb:.1f} MB, upload {upload.rss_mb:.1f} MB"
    )
    print(
        f"facts: {checker.checked} numbers checked against direct SQL, "
        f"{len(checker.mismatches)} mismatches"
        + (
            f"; fact kinds not checked: {', '.join(sorted(checker.unchecked))}"
            if checker.unchecked
            else ""
        )
    )
    for mismatch in checker.mismatches:
        print(f"  MISMATCH {mismatch}")
    scale = "" if rows >= TARGET_ROWS else f" (measured on {rows:,} rows, not 10M)"
    verdicts = [
        (f"answer p50 < {TARGET_SECONDS:.0f} s on 10M rows{scale}", p50 < TARGET_SECONDS),
        (
            f"answer p50 < {TARGET_SECONDS:.0f} s on 10M rows, cold{scale}",
            cold_p50 < TARGET_SECONDS,
        ),
        (
            f"RSS growth < {TARGET_RSS_MB:.0f} MB{scale}",
            max(source.rss_mb, cold.rss_mb) < TARGET_RSS_MB,
        ),
        ("every fact equal to the direct query", not checker.mismatches),
    ]
    for target, met in verdicts:
        print(f"target: {target}: {'met' if met else 'NOT MET'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=TARGET_ROWS, help="orders (10,000,000)")
    parser.add_argument("--runs", type=int, default=3, help="times each question is asked (3)")
    parser.add_argument(
        "--table",
        default="vendas_pedido",
        choices=["vendas_pedido", TABLE],
        help="what the questions ask: the orders with their declared joins (default), or "
        "the view that joins them",
    )
    parser.add_argument(
        "--database",
        help="an existing database (name on 127.0.0.1:5432) built by an earlier --keep run, "
        "reused and kept, instead of a fresh one",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database; print its name")
    args = parser.parse_args(argv)
    with fresh_database(args.database, keep=args.keep) as url:
        if args.database is None:
            build(url, args.rows)
        cold, source, upload, upload_rows = run(url, args.rows, args.runs, args.table)
        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            checker = Checker(engine)
            answers = [*source.answers.items(), *cold.answers.items()]
            for question, answer in answers:
                (count,) = checker.query(f"SELECT count(*) FROM {TABLE}")[0]  # noqa: S608
                checker.same(f"{question!r} row_count", answer["profile"]["row_count"], count)
                for fact in answer["facts"]:
                    checker.fact(question, fact)
        finally:
            engine.dispose()
        report(args.rows, cold, source, upload, upload_rows, checker)
    return 1 if checker.mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
