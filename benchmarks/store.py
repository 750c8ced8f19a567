"""The SQL store's speed on SQLite and PostgreSQL: chats, insight listing, dataset upload.

For each database (SQLite in a temporary file, PostgreSQL in a temporary database at
127.0.0.1:5432, dropped at the end) it measures:

* appends/s: one message per ``append_messages`` call, round-robin over a handful of chats,
  first one call at a time, then from 16 concurrent tasks;
* reads/s: ``get_chat`` of a chat holding 20 messages, one at a time;
* the chat list: ``list_chats`` for the newest 50 of 100,000 chats of one tenant (bulk-inserted
  with SQLAlchemy core executemany, each chat with one message), p50 over several calls:
  unfiltered, by user, by tag, by a one-word and a two-word search, and a page deep down;
* the insight list: the newest 50 of 10,000 insight records of one tenant (bulk-inserted, each
  record a few KB of JSON), through ``Datasets.insights`` as the route calls it, p50 and p95
  against a bare ``SELECT 1`` round trip's; the target of issue 16 is a p50 under 20 ms on
  PostgreSQL;
* a 50 MB dataset upload through ``Datasets.add_version`` (what ``POST /datasets`` calls once
  the upload is parsed into a Parquet file), in a child process of its own: the growth of its
  peak RSS (``VmHWM``, reset after a warm-up upload) against the upload's size, and the
  seconds against a plain copy of the file; the target is a growth under 2x the upload.

Timings swing on a shared machine, so every figure has a baseline measured in the same run on
the same database: a bare one-row INSERT in its own write transaction for appends, a bare
``SELECT 1`` round trip for reads, and the unfiltered list for the filtered ones.

Run from the repository root::

    .venv/bin/python benchmarks/store.py
    .venv/bin/python benchmarks/store.py --databases sqlite --chats 20000
    .venv/bin/python benchmarks/store.py --only insights,upload

This is a benchmark, not a test: it exits 0 whatever the figures, unless something crashed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import duckdb
import orjson
from sqlalchemy import insert, text

from billumy.insights.datasets import Datasets
from billumy.store.base import Chat, ChatPage, NewMessage
from billumy.store.sql import SQLStore
from billumy.store.sql_chats import chat_messages, chats
from billumy.store.sql_datasets import insights

PG_ADMIN_URLS = (
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://root@127.0.0.1:5432/test",
)
TENANT = "bench"
BULK_START = datetime(2026, 1, 1, tzinfo=UTC)
# fmt: off
WORDS = [
    "vendas", "receita", "churn", "margem", "estoque", "clientes", "previsão", "relatório",
    "campanha", "orçamento", "revenue", "forecast", "inventory", "pricing", "cohort",
    "retention", "funnel", "dashboard", "anomaly", "region", "supplier", "invoice", "refund",
    "shipping", "discount", "quarter", "growth", "segment", "export", "import",
]
# fmt: on


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Result:
    database: str
    rows: list[tuple[str, float, str, float | None]] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)

    def verdict(self, what: str, passed: bool, target: str) -> None:
        line = f"{self.database}: {what}: {'PASS' if passed else 'MISS'} (target: {target})"
        self.verdicts.append(line)
        progress(f"  {line}")

    def add(self, what: str, value: float, unit: str, baseline: float | None = None) -> None:
        self.rows.append((what, value, unit, baseline))
        ratio = f" ({value / baseline:.2f}x baseline)" if baseline else ""
        progress(f"  {what}: {value:,.2f} {unit}{ratio}")


async def timed(work: Callable[[], Awaitable[Any]], count: int) -> float:
    """Seconds for ``count`` sequential calls."""
    start = time.perf_counter()
    for _ in range(count):
        await work()
    return time.perf_counter() - start


async def p50_ms(work: Callable[[], Awaitable[Any]], count: int) -> float:
    await work()  # warm the plan and the cache
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        await work()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


async def samples_ms(work: Callable[[], Awaitable[Any]], count: int) -> list[float]:
    """Milliseconds of each of ``count`` sequential calls, after one to warm up."""
    await work()
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        await work()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20, method="inclusive")[-1]


def chat(chat_id: str, when: datetime, user_id: str = "u0", **extra: Any) -> Chat:
    return Chat(
        id=chat_id,
        tenant=TENANT,
        user_id=user_id,
        model="smollm2-135m:latest",
        created_at=when,
        updated_at=when,
        **extra,
    )


async def bench_appends(store: SQLStore, result: Result, count: int) -> None:
    now = datetime.now(UTC)
    targets = [f"append-{n}" for n in range(8)]
    for chat_id in targets:
        await store.create_chat(chat(chat_id, now))
    message = [NewMessage(role="user", content="how did revenue grow last quarter?")]

    async with store.writer.begin() as conn:
        await conn.execute(text("CREATE TABLE bench_baseline (id TEXT PRIMARY KEY, v TEXT)"))

    async def bare_write() -> None:
        async with store.writer.begin() as conn:
            await conn.execute(
                text("INSERT INTO bench_baseline (id, v) VALUES (:id, :v)"),
                {"id": secrets.token_hex(12), "v": message[0].content},
            )

    baseline = count / await timed(bare_write, count)
    result.add("bare INSERT transactions, sequential", baseline, "/s")

    turn = iter(range(10**9))

    async def append() -> None:
        await store.append_messages(TENANT, targets[next(turn) % len(targets)], message)

    sequential = count / await timed(append, count)
    result.add("appends, sequential", sequential, "/s", baseline)

    tasks = 16
    start = time.perf_counter()
    await asyncio.gather(*(timed(append, count // tasks) for _ in range(tasks)))
    concurrent = (count // tasks) * tasks / (time.perf_counter() - start)
    result.add(f"appends, {tasks} concurrent tasks", concurrent, "/s", baseline)

    total = sum(
        (c.message_count for c in await store.list_chats(TENANT, limit=len(targets))), start=0
    )
    expected = count + (count // tasks) * tasks
    if total != expected:
        raise RuntimeError(f"appends lost: {total} stored, {expected} made")


async def bench_reads(store: SQLStore, result: Result, count: int) -> None:
    first = [
        NewMessage(role=("user", "assistant")[n % 2], content=f"message {n} " + " ".join(WORDS))
        for n in range(20)
    ]
    await store.create_chat(chat("read-me", datetime.now(UTC)), first)

    async def ping() -> None:
        async with store.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    baseline = count / await timed(ping, count)
    result.add("bare SELECT 1 round trips", baseline, "/s")

    async def read() -> None:
        got = await store.get_chat(TENANT, "read-me")
        assert got is not None and got.messages is not None and len(got.messages) == 20

    reads = count / await timed(read, count)
    result.add("get_chat with 20 messages", reads, "/s", baseline)


async def bulk_insert(store: SQLStore, count: int, batch: int = 5000) -> None:
    """``count`` chats of one tenant (100 users, a few tags) with one message each."""
    rng = random.Random(7)
    made = 0
    t0 = time.perf_counter()
    while made < count:
        size = min(batch, count - made)
        chat_rows, message_rows = [], []
        for n in range(made, made + size):
            when = BULK_START + timedelta(seconds=n)
            chat_id = f"chat-{n:07d}"
            chat_rows.append(
                {
                    "id": chat_id,
                    "tenant": TENANT,
                    "user_id": f"user-{n % 100}",
                    "title": " ".join(rng.sample(WORDS, 3)),
                    "model": "smollm2-135m:latest",
                    "tags": [f"tag-{n % 20}"],
                    "metadata": {},
                    "archived": n % 10 == 0,
                    "message_count": 1,
                    "created_at": when,
                    "updated_at": when,
                }
            )
            message_rows.append(
                {
                    "id": secrets.token_hex(12),
                    "chat_id": chat_id,
                    "seq": 1,
                    "role": "user",
                    "content": " ".join(rng.choices(WORDS, k=12)) + f" n{n}",
                    "model": None,
                    "incomplete": False,
                    "done_reason": None,
                    "stats": {},
                    "created_at": when,
                }
            )
        async with store.writer.begin() as conn:
            await conn.execute(insert(chats), chat_rows)
            await conn.execute(insert(chat_messages), message_rows)
        made += size
        progress(f"  inserted {made:,}/{count:,} chats ({time.perf_counter() - t0:.1f} s)")
    # As autovacuum would do by now: statistics, and GIN pending lists merged.
    await analyze(store)


async def bench_list(store: SQLStore, result: Result, count: int, calls: int) -> None:
    t0 = time.perf_counter()
    await bulk_insert(store, count)
    result.add(f"bulk insert of {count:,} chats + messages", time.perf_counter() - t0, "s")
    newest = await store.list_chats(TENANT, limit=50)
    assert len(newest) == 50

    def listing(**filters: Any) -> Callable[[], Awaitable[Any]]:
        async def run() -> None:
            await store.list_chats(TENANT, limit=50, **filters)

        return run

    middle = count // 2
    page = ChatPage(created_at=BULK_START + timedelta(seconds=middle), id=f"chat-{middle:07d}")
    baseline = await p50_ms(listing(), calls)
    result.add("list newest 50", baseline, "ms p50")
    cases: list[tuple[str, dict[str, Any]]] = [
        ("list newest 50, user_id", {"user_id": "user-42"}),
        ("list newest 50, tag", {"tag": "tag-7"}),
        ("list newest 50, archived", {"archived": True}),
        ("list newest 50, q one word", {"q": "churn"}),
        ("list newest 50, q two words", {"q": "Receita PREVISÃO"}),
        ("list newest 50, q rare word", {"q": f"n{count // 3}"}),
        ("list 50 from the middle (after)", {"after": page}),
    ]
    for name, filters in cases:
        result.add(name, await p50_ms(listing(**filters), calls), "ms p50", baseline)


def insight_row(n: int, rng: random.Random) -> dict[str, Any]:
    """The ``insights`` row of a record as ``put_insight`` writes it: a few KB of JSON."""
    when = BULK_START + timedelta(seconds=n)
    record_id = f"in_{n:016x}"
    source = {"id": f"ds_{n % 40:016x}", "version": 1 + n % 3, "hash": secrets.token_hex(32)}
    question = " ".join(rng.sample(WORDS, 5)) + "?"
    facts = [
        {
            "id": f"f{k}",
            "kind": rng.choice(["total", "trend", "share", "anomaly"]),
            "sql": "SELECT region, sum(revenue) FROM data GROUP BY region ORDER BY 2 DESC",
            "values": {f"{w}": round(rng.random() * 10**6, 2) for w in rng.sample(WORDS, 6)},
        }
        for k in range(6)
    ]
    summary = " ".join(rng.choices(WORDS, k=30))
    record = {
        "id": record_id,
        "created_at": when.isoformat().replace("+00:00", "Z"),
        "user_id": f"user-{n % 100}",
        "model": "billumy",
        "question": question,
        "language": "pt",
        "dataset": source,
        "facts": facts,
        "answer": {"text": summary, "cites": [f["id"] for f in facts]},
        "insights": [{"title": w, "text": summary, "facts": ["f0"]} for w in WORDS[:3]],
        "summary": summary,
        "changes": [],
    }
    return {
        "id": record_id,
        "tenant": TENANT,
        "user_id": record["user_id"],
        "dataset_id": source["id"],
        "dataset_version": source["version"],
        "question": question,
        "summary": summary,
        "language": "pt",
        "dataset": orjson.dumps(source).decode(),
        "created_at": when,
        "record": orjson.dumps(record).decode(),
    }


async def bench_insights(store: SQLStore, result: Result, count: int, calls: int) -> None:
    rng = random.Random(11)
    t0 = time.perf_counter()
    for start in range(0, count, 2000):
        rows = [insight_row(n, rng) for n in range(start, min(start + 2000, count))]
        async with store.writer.begin() as conn:
            await conn.execute(insert(insights), rows)
    await analyze(store)
    result.add(f"bulk insert of {count:,} insight records", time.perf_counter() - t0, "s")

    with tempfile.TemporaryDirectory(prefix="billumy-bench-") as tmp:
        service = Datasets(store, Path(tmp), max_tenant_bytes=10**12)
        newest = await service.insights(TENANT, limit=50)
        expected = [f"in_{n:016x}" for n in range(count - 1, count - 51, -1)]
        if [brief.id for brief in newest] != expected:
            raise RuntimeError("the insight list is not the newest 50, newest first")

        async def ping() -> None:
            async with store.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        async def newest_50() -> None:
            await service.insights(TENANT, limit=50)

        async def users_newest_50() -> None:
            await service.insights(TENANT, user_id="user-42", limit=50)

        base = await samples_ms(ping, calls)
        result.add("bare SELECT 1 round trip", statistics.median(base), "ms p50")
        result.add("bare SELECT 1 round trip", p95(base), "ms p95")
        listed = await samples_ms(newest_50, calls)
        p50 = statistics.median(listed)
        result.add(f"insights: newest 50 of {count:,}", p50, "ms p50", statistics.median(base))
        result.add(f"insights: newest 50 of {count:,}", p95(listed), "ms p95", p95(base))
        by_user = await samples_ms(users_newest_50, calls)
        result.add(
            "insights: newest 50 of one user",
            statistics.median(by_user),
            "ms p50",
            statistics.median(base),
        )
    if store.engine.dialect.name == "postgresql":
        result.verdict(f"insights newest 50 of {count:,}, p50 {p50:.2f} ms", p50 < 20, "< 20 ms")


async def analyze(store: SQLStore) -> None:
    """Table statistics, as autovacuum (or a long-running SQLite) would have by now."""
    if store.engine.dialect.name == "postgresql":
        async with store.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))
    else:
        async with store.writer.begin() as conn:
            await conn.execute(text("ANALYZE"))


def make_parquet(path: Path, megabytes: int) -> tuple[int, list[dict[str, str]]]:
    """A Parquet file of about ``megabytes`` MB of incompressible rows; its rows and columns."""
    rows = megabytes * 1024 * 1024 // 84  # about 84 bytes a row, uncompressed
    con = duckdb.connect()
    try:
        con.execute(
            "CREATE TABLE data AS SELECT i AS id, "
            "md5(i::VARCHAR || 'a') || md5(i::VARCHAR || 'b') AS token, random() AS amount "
            "FROM range(?) t(i)",
            [rows],
        )
        literal = "'" + str(path).replace("'", "''") + "'"
        con.execute(f"COPY data TO {literal} (FORMAT parquet, COMPRESSION uncompressed)")
    finally:
        con.close()
    columns = [
        {"name": "id", "type": "BIGINT"},
        {"name": "token", "type": "VARCHAR"},
        {"name": "amount", "type": "DOUBLE"},
    ]
    return rows, columns


def _status_kb(field_name: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field_name} in /proc/self/status")


def reset_peak_rss() -> None:
    """VmHWM := VmRSS, for this process (Linux 4.0 and later)."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def copy_head(source: Path, target: Path, size: int) -> None:
    with source.open("rb") as handle:
        target.write_bytes(handle.read(size))


class RSSSampler:
    """The highest VmRSS seen by a thread reading /proc/self/status every millisecond: a check
    of VmHWM (reset through /proc/self/clear_refs), which can only be higher."""

    def __init__(self) -> None:
        import threading

        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.001):
            self.peak_kb = max(self.peak_kb, _status_kb("VmRSS"))

    def __enter__(self) -> RSSSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def upload_child(
    url: str, parquet: str, rows: int, columns: list[dict[str, str]]
) -> dict[str, float]:
    """In a child process of its own: a warm-up upload, then ``parquet`` through the save path
    of ``POST /datasets``; the peak RSS growth it caused and the seconds it took."""

    async def run() -> dict[str, float]:
        source = Path(parquet)
        root = source.parent / "host"
        store = SQLStore(url)
        await store.ainit()
        service = Datasets(store, root, max_tenant_bytes=10**12)
        try:

            async def upload(path: Path, digest: str) -> float:
                start = time.perf_counter()
                dataset, created = await service.add_version(
                    TENANT,
                    dataset_id=None,
                    name=path.name,
                    user_id=None,
                    parquet=path,
                    digest=digest,
                    rows=rows,
                    columns=columns,
                )
                assert created and dataset.latest.bytes > 0
                return time.perf_counter() - start

            # Warm up every code path and connection with a small file first.
            # (The store takes the bytes as they are: a piece of the file does. One smaller than
            # a chunk, so that no chunk-sized buffer is left over to hide the growth.)
            small = service.scratch() / "warm.parquet"
            await asyncio.to_thread(copy_head, source, small, 64 * 1024)
            await upload(small, secrets.token_hex(32))
            target = service.scratch() / "upload.parquet"
            start = time.perf_counter()
            await asyncio.to_thread(shutil.copyfile, source, target)
            copy_s = time.perf_counter() - start
            reset_peak_rss()
            before_kb = _status_kb("VmRSS")
            with RSSSampler() as sampler:
                upload_s = await upload(target, secrets.token_hex(32))
            peak_kb = max(_status_kb("VmHWM"), sampler.peak_kb)
            return {
                "growth": (peak_kb - before_kb) * 1024.0,
                "before": before_kb * 1024.0,
                "upload_s": upload_s,
                "copy_s": copy_s,
            }
        finally:
            await store.aclose()

    return asyncio.run(run())


async def bench_upload(url: str, result: Result, megabytes: int) -> None:
    with tempfile.TemporaryDirectory(prefix="billumy-bench-") as tmp:
        parquet = Path(tmp) / "data.parquet"
        rows, columns = await asyncio.to_thread(make_parquet, parquet, megabytes)
        size = parquet.stat().st_size
        context = multiprocessing.get_context("spawn")
        with context.Pool(1) as pool:
            got = await asyncio.to_thread(
                pool.apply, upload_child, (url, str(parquet), rows, columns)
            )
    mb = 1024 * 1024
    result.add(f"upload of {size / mb:.1f} MB: seconds", got["upload_s"], "s", got["copy_s"])
    result.add(
        f"upload of {size / mb:.1f} MB: peak RSS growth", got["growth"] / mb, "MB", size / mb
    )
    ratio = got["growth"] / size
    result.verdict(
        f"upload peak RSS growth {got['growth'] / mb:.1f} MB = {ratio:.2f}x the upload",
        ratio < 2,
        "< 2x the upload",
    )


@contextlib.asynccontextmanager
async def database(kind: str) -> AsyncIterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="billumy-bench-") as tmp:
            yield "sqlite+aiosqlite:///" + str(Path(tmp) / "bench.db")
        return
    admin, url = None, ""
    for candidate in PG_ADMIN_URLS:
        try:
            admin = await asyncpg.connect(candidate, timeout=5)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            continue
        url = candidate
        break
    if admin is None:
        raise SystemExit("PostgreSQL at 127.0.0.1:5432 (database 'test') is unreachable")
    name = f"billumy_bench_{secrets.token_hex(4)}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        user = url.split("//", 1)[1].split("@", 1)[0]
        yield f"postgresql+asyncpg://{user}@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def bench(kind: str, args: argparse.Namespace) -> Result:
    result = Result(kind)
    async with database(kind) as url:
        store = SQLStore(url)
        await store.ainit()
        try:
            if "chats" in args.only:
                progress(f"{kind}: appends")
                await bench_appends(store, result, args.appends)
                progress(f"{kind}: reads")
                await bench_reads(store, result, args.reads)
                progress(f"{kind}: list")
                await bench_list(store, result, args.chats, args.calls)
            if "insights" in args.only:
                progress(f"{kind}: insights")
                await bench_insights(store, result, args.insights, args.insight_calls)
        finally:
            await store.aclose()
        if "upload" in args.only:
            progress(f"{kind}: upload")
            await bench_upload(url, result, args.upload_mb)
    return result


def summarize(results: list[Result]) -> None:
    print()
    header = f"{'database':<11}{'measure':<44}{'value':>14}  {'unit':<8}{'vs baseline':>12}"
    print(header)
    print("-" * len(header))
    for result in results:
        for what, value, unit, baseline in result.rows:
            ratio = f"{value / baseline:.2f}x" if baseline else ""
            print(f"{result.database:<11}{what:<44}{value:>14,.2f}  {unit:<8}{ratio:>12}")
    print()
    print("baselines: appends vs a bare one-row INSERT transaction, reads vs SELECT 1,")
    print("filtered lists vs the unfiltered list, the insight list vs SELECT 1, the upload's")
    print("seconds vs a plain copy of its file and its RSS growth vs its size (same database,")
    print("same run)")
    verdicts = [line for result in results for line in result.verdicts]
    if verdicts:
        print()
        for line in verdicts:
            print(line)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--databases",
        default="sqlite,postgresql",
        help="comma-separated: sqlite, postgresql (default: both)",
    )
    parser.add_argument("--appends", type=int, default=2000, help="appends per run (2000)")
    parser.add_argument("--reads", type=int, default=2000, help="get_chat calls (2000)")
    parser.add_argument("--chats", type=int, default=100_000, help="chats for the list (100000)")
    parser.add_argument("--calls", type=int, default=21, help="list calls per p50 (21)")
    parser.add_argument(
        "--only",
        default="chats,insights,upload",
        help="comma-separated: chats, insights, upload (default: all)",
    )
    parser.add_argument(
        "--insights", type=int, default=10_000, help="insight records for the list (10000)"
    )
    parser.add_argument(
        "--insight-calls", type=int, default=201, help="insight list calls for p50/p95 (201)"
    )
    parser.add_argument("--upload-mb", type=int, default=50, help="upload size in MB (50)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    kinds = [k.strip() for k in args.databases.split(",") if k.strip()]
    unknown = set(kinds) - {"sqlite", "postgresql"}
    if unknown:
        raise SystemExit(f"unknown database(s): {', '.join(sorted(unknown))}")
    args.only = {part.strip() for part in args.only.split(",") if part.strip()}
    if args.only - {"chats", "insights", "upload"}:
        raise SystemExit(f"unknown part(s): {', '.join(sorted(args.only))}")
    results = [asyncio.run(bench(kind, args)) for kind in kinds]
    summarize(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
