"""DuckDB connections for client data, locked down before the first query.

Every connection that holds a client's data is opened by :func:`connect` and is, from its
first statement on:

* **without file access**: ``enable_external_access = false``; the only file it may read is
  the one input it was opened for (``allowed_paths``), the only place it may write is its own
  private outbox directory (``allowed_directories``), so ``read_csv('/etc/passwd')``,
  ``COPY ... TO``, ``ATTACH`` or ``INSTALL`` fail whatever SQL reaches it;
* **locked**: ``lock_configuration = true``, so no statement can undo the above or raise its
  bounds;
* **bounded**: ``threads``, ``memory_limit`` and a private ``temp_directory`` with
  ``max_temp_directory_size`` come from the settings; running out of memory (or spill space)
  is a 413, not a process the kernel kills;
* **timed**: each statement runs under a timer that calls ``con.interrupt()`` when it runs
  past ``query_timeout_s``; a stopped query is a :class:`~billumy.errors.QueryTimeoutError`
  (503) naming the limit;
* **row-capped**: results read back through :func:`run` with ``max_rows`` raise a 413 rather
  than pull an unbounded result into Python.

The bounds travel with the connection (looked up with :func:`limits_of`), so any
:class:`~billumy.insights.data.Table` made over it keeps them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from billumy.errors import BadRequestError, PayloadTooLargeError, QueryTimeoutError
from billumy.metrics import process_running

log = logging.getLogger(__name__)

DEFAULT_THREADS = 2
MiB = 1024 * 1024
_PREFIX = "billumy-duckdb-"


@dataclass
class Limits:
    """The most data one request may bring, and what its DuckDB connection may use.

    Data above ``max_rows``, ``max_columns``, ``max_cell_chars``, ``max_bytes`` (as sent) or
    ``max_decoded_bytes`` (as held in memory once decompressed and typed) is a 413.
    """

    max_rows: int = 1_000_000
    max_columns: int = 100
    max_cell_chars: int = 10_000
    max_bytes: int = 100 * MiB
    max_decoded_bytes: int = 256 * MiB
    max_result_rows: int = 10_000
    query_timeout_s: float = 30.0
    memory_limit_bytes: int = 512 * MiB
    threads: int = DEFAULT_THREADS
    temp_directory: Path | None = None
    max_temp_bytes: int = 2048 * MiB


@dataclass
class _Sandbox:
    """A connection's bounds and private directory (``spill/`` for DuckDB, ``out/`` for
    files it writes); the directory goes when the connection is closed or collected."""

    limits: Limits
    workdir: Path | None
    finalizer: weakref.finalize[Any, Any] | None = field(default=None, repr=False)

    @property
    def outbox(self) -> Path | None:
        return None if self.workdir is None else self.workdir / "out"


_SANDBOXES: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, _Sandbox] = (
    weakref.WeakKeyDictionary()
)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _list(paths: Sequence[Path]) -> str:
    return "[" + ", ".join(_literal(str(p)) for p in paths) + "]"


def connect(
    limits: Limits | None = None, *, read: Sequence[Path] = ()
) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory DuckDB, locked down (see the module docstring), that may read only
    the files in ``read``."""
    limits = limits or Limits()
    parent = limits.temp_directory
    if parent is not None:
        parent = parent.resolve()
        parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=parent))
    (workdir / "out").mkdir()
    con = duckdb.connect(":memory:")
    sandbox = _Sandbox(limits=limits, workdir=workdir)
    sandbox.finalizer = weakref.finalize(con, shutil.rmtree, workdir, True)
    _SANDBOXES[con] = sandbox
    statements = [
        f"SET threads = {max(1, int(limits.threads))}",
        f"SET memory_limit = '{max(16, limits.memory_limit_bytes // MiB)}MiB'",
        f"SET temp_directory = {_literal(str(workdir / 'spill'))}",
        f"SET max_temp_directory_size = '{max(1, limits.max_temp_bytes // MiB)}MiB'",
        "SET autoinstall_known_extensions = false",
        "SET autoload_known_extensions = false",
        f"SET allowed_directories = {_list([workdir / 'out'])}",
    ]
    if read:
        statements.append(f"SET allowed_paths = {_list([p.resolve() for p in read])}")
    statements += ["SET enable_external_access = false", "SET lock_configuration = true"]
    try:
        for statement in statements:
            con.execute(statement)
    except BaseException:
        close(con)
        raise
    return con


def limits_of(con: duckdb.DuckDBPyConnection) -> Limits:
    """The bounds ``con`` was opened with (the defaults for a connection made elsewhere)."""
    sandbox = _SANDBOXES.get(con)
    return sandbox.limits if sandbox is not None else Limits()


def outbox(con: duckdb.DuckDBPyConnection) -> Path | None:
    """The one directory ``con`` may write files into; None for a connection made elsewhere."""
    sandbox = _SANDBOXES.get(con)
    return None if sandbox is None else sandbox.outbox


def close(con: duckdb.DuckDBPyConnection) -> None:
    """Close ``con`` and remove its private directory."""
    con.close()
    sandbox = _SANDBOXES.pop(con, None)
    if sandbox is not None and sandbox.finalizer is not None:
        sandbox.finalizer()


@contextlib.contextmanager
def guarded(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the statement inside under the connection's time limit, and turn DuckDB's
    out-of-memory, interrupt and permission errors into client errors."""
    limits = limits_of(con)
    seconds = limits.query_timeout_s
    lock = threading.Lock()
    running = True
    fired = False

    def stop() -> None:
        nonlocal fired
        with lock:
            if running:  # never interrupt the connection's next statement
                fired = True
                con.interrupt()

    timer = threading.Timer(seconds, stop) if seconds and seconds > 0 else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        yield
    except duckdb.InterruptException:
        if fired:
            raise QueryTimeoutError(
                f"an analysis query ran longer than {seconds:g} s and was stopped; "
                "send less data or a narrower question"
            ) from None
        raise
    except duckdb.OutOfMemoryException:
        raise PayloadTooLargeError(
            "the analysis needs more than the "
            f"{limits.memory_limit_bytes // MiB} MiB of memory (and "
            f"{limits.max_temp_bytes // MiB} MiB of spill space) a request may use; "
            "send less data"
        ) from None
    except duckdb.PermissionException:
        # Our SQL never names a file it was not given; one that does came from a bug.
        log.warning("a query was refused file access")
        raise BadRequestError("the analysis may only read the data it was given") from None
    finally:
        with lock:
            running = False
        if timer is not None:
            timer.cancel()


def run(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params: Sequence[Any] | None = None,
    *,
    max_rows: int | None = None,
) -> list[tuple[Any, ...]]:
    """Execute under :func:`guarded` and fetch everything; more than ``max_rows`` rows is a
    413 (only ``max_rows + 1`` are read)."""
    return described(con, sql, params, max_rows=max_rows)[1]


def described(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params: Sequence[Any] | None = None,
    *,
    max_rows: int | None = None,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Like :func:`run`, with the result's column names."""
    with guarded(con):
        result = con.execute(sql, params or [])
        names = [str(d[0]) for d in result.description or []]
        rows = result.fetchall() if max_rows is None else result.fetchmany(max_rows + 1)
    if max_rows is not None and len(rows) > max_rows:
        raise PayloadTooLargeError(
            f"an analysis query returned more than {max_rows} rows; ask for a coarser "
            "period or fewer segments"
        )
    return names, rows


def sweep(parent: Path) -> int:
    """Remove the private directories (and spill files) that connections of processes no
    longer running left in ``parent`` (a worker killed mid-query); returns how many."""
    removed = 0
    for path in parent.glob(f"{_PREFIX}*-*") if parent.is_dir() else ():
        pid = path.name.removeprefix(_PREFIX).split("-", 1)[0]
        if not pid.isdigit() or process_running(int(pid)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed
    return True
