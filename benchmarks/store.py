"""The SQL chat store's speed on SQLite and PostgreSQL: appends, reads and the chat list.

For each database (SQLite in a temporary file, PostgreSQL in a temporary database at
127.0.0.1:5432, dropped at the end) it measures:

* appends/s: one message per ``append_messages`` call, round-robin over a handful of chats,
  first one call at a time, then from 16 concurrent tasks;
* reads/s: ``get_chat`` of a chat holding 20 messages, one at a time;
* the chat list: ``list_chats`` for the newest 50 of 100,000 chats of one tenant (bulk-inserted
  with SQLAlchemy core executemany, each chat with one message), p50 over several calls:
  unfiltered, by user, by tag, by a one-word and a two-word search, and a page deep down.

Timings swing on a shared machine, so every figure has a baseline measured in the same run on
the same database: a bare one-row INSERT in its own write transaction for appends, a bare
``SELECT 1`` round trip for reads, and the unfiltered list for the filtered ones.

Run from the repository root::

    .venv/bin/python benchmarks/store.py
    .venv/bin/python benchmarks/store.py --databases sqlite --chats 20000

This is a benchmark, not a test: it exits 0 whatever the figures, unless something crashed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import secrets
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
from sqlalchemy import insert, text

from billumy.store.base import Chat, ChatPage, NewMessage
from billumy.store.sql import SQLStore
from billumy.store.sql_chats import chat_messages, chats

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
    if store.engine.dialect.name == "postgresql":
        async with store.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))
    else:
        async with store.writer.begin() as conn:
            await conn.execute(text("ANALYZE"))


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
            progress(f"{kind}: appends")
            await bench_appends(store, result, args.appends)
            progress(f"{kind}: reads")
            await bench_reads(store, result, args.reads)
            progress(f"{kind}: list")
            await bench_list(store, result, args.chats, args.calls)
        finally:
            await store.aclose()
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
    print("filtered lists vs the unfiltered list (same database, same run)")


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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    kinds = [k.strip() for k in args.databases.split(",") if k.strip()]
    unknown = set(kinds) - {"sqlite", "postgresql"}
    if unknown:
        raise SystemExit(f"unknown database(s): {', '.join(sorted(unknown))}")
    results = [asyncio.run(bench(kind, args)) for kind in kinds]
    summarize(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
