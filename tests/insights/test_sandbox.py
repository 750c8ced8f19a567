"""DuckDB holding a client's data: no file access, configuration locked, bounded memory,
threads, spill space, time and result rows; uploads bounded by what they decompress to."""

from __future__ import annotations

import io
import json
import os
import resource
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from billumy.errors import BadRequestError, PayloadTooLargeError, QueryTimeoutError
from billumy.insights import data, profile, sandbox
from billumy.insights.plan import Plan
from billumy.insights.planned import facts_for_plan
from billumy.insights.sandbox import Limits, MiB

ROWS = [
    {"month": f"2024-{m:02d}-01", "region": r, "revenue": 100.0 * m}
    for m in range(1, 7)
    for r in ("Sul", "Norte")
]


def _limits(tmp_path: Path, **overrides: object) -> Limits:
    return Limits(temp_directory=tmp_path / "duck", **overrides)  # type: ignore[arg-type]


def _loaders(tmp_path: Path) -> dict[str, Callable[[Limits], data.Table]]:
    csv_text = "month,region,revenue\n" + "".join(
        f"{r['month']},{r['region']},{r['revenue']}\n" for r in ROWS
    )
    (tmp_path / "rows.csv").write_text(csv_text)
    (tmp_path / "rows.json").write_text(json.dumps(ROWS))
    with data.from_records(ROWS) as table:
        data.save_parquet(table, tmp_path / "rows.parquet")
    return {
        "records": lambda lim: data.from_records(ROWS, lim),
        "columns": lambda lim: data.from_columns({k: [r[k] for r in ROWS] for k in ROWS[0]}, lim),
        "csv-text": lambda lim: data.from_csv(csv_text, lim),
        "csv-file": lambda lim: data.from_file(tmp_path / "rows.csv", "csv", lim),
        "json-file": lambda lim: data.from_file(tmp_path / "rows.json", "json", lim),
        "parquet-file": lambda lim: data.from_file(tmp_path / "rows.parquet", "parquet", lim),
    }


LOADERS = ["records", "columns", "csv-text", "csv-file", "json-file", "parquet-file"]


@pytest.mark.parametrize("loader", LOADERS)
def test_every_loader_gives_a_locked_connection_without_file_access(
    tmp_path: Path, loader: str
) -> None:
    (tmp_path / "secret.csv").write_text("a\n1\n")
    limits = _limits(tmp_path, memory_limit_bytes=256 * MiB, threads=1, max_temp_bytes=64 * MiB)
    with _loaders(tmp_path)[loader](limits) as table:
        assert table.row_count == len(ROWS)
        for sql in (
            "SELECT * FROM read_csv('/etc/passwd')",
            f"SELECT * FROM read_csv('{tmp_path / 'secret.csv'}')",  # noqa: S608
            f"SELECT * FROM read_parquet('{tmp_path / 'rows.parquet'}')",  # noqa: S608
            f"COPY data TO '{tmp_path / 'out.csv'}'",
            f"ATTACH '{tmp_path / 'other.db'}'",
            "INSTALL httpfs",
            "SELECT * FROM glob('/etc/*')",
        ):
            if loader == "parquet-file" and "rows.parquet" in sql:
                continue  # the one file it was opened for
            with pytest.raises(BadRequestError, match="only read the data it was given"):
                table.query(sql)
        for sql in (
            "SET enable_external_access = true",
            "SET memory_limit = '64GB'",
            "SET threads = 64",
            "RESET lock_configuration",
        ):
            with pytest.raises(duckdb.Error, match="locked"):
                table.query(sql)
        settings = dict(
            table.query(
                "SELECT name, value FROM duckdb_settings() WHERE name IN ('threads', "
                "'memory_limit', 'enable_external_access', 'lock_configuration', "
                "'temp_directory', 'max_temp_directory_size')"
            )
        )
        assert settings["enable_external_access"] == "false"
        assert settings["lock_configuration"] == "true"
        assert settings["threads"] == "1"
        assert settings["memory_limit"] in {"256.0 MiB", "268.4 MB"}
        assert settings["temp_directory"].startswith(str((tmp_path / "duck").resolve()))
        assert not (tmp_path / "out.csv").exists()
    # The connection's private directory went with it.
    assert list((tmp_path / "duck").iterdir()) == []


def test_a_slow_query_is_stopped_at_its_time_limit(tmp_path: Path) -> None:
    with data.from_records(ROWS, _limits(tmp_path, query_timeout_s=0.3)) as table:
        started = time.monotonic()
        with pytest.raises(QueryTimeoutError, match=r"longer than 0.3 s"):
            table.query("SELECT count(*) FROM range(100000000000) a")
        assert time.monotonic() - started < 5
        # The connection is usable afterwards, and the next query is not interrupted.
        time.sleep(0.4)
        assert table.query("SELECT count(*) FROM data") == [(len(ROWS),)]


def test_running_out_of_memory_is_a_413_naming_the_limit(tmp_path: Path) -> None:
    limits = _limits(tmp_path, memory_limit_bytes=32 * MiB, max_temp_bytes=1 * MiB)
    with (
        data.from_records(ROWS, limits) as table,
        pytest.raises(PayloadTooLargeError, match="32 MiB of memory"),
    ):
        table.query(
            "SELECT i % 5000000 AS k, list(repeat('x', 50)) FROM range(20000000) t(i) "
            "GROUP BY k ORDER BY k LIMIT 1"
        )


def test_results_are_capped_in_rows(tmp_path: Path) -> None:
    with data.from_records(ROWS, _limits(tmp_path, max_result_rows=100)) as table:
        assert len(table.records("SELECT * FROM range(100)")) == 100
        with pytest.raises(PayloadTooLargeError, match="more than 100 rows"):
            table.records("SELECT * FROM range(101)")
        with pytest.raises(PayloadTooLargeError, match="more than 100 rows"):
            table.query("SELECT * FROM range(1000000)")


def test_a_daily_series_over_centuries_is_refused_not_returned(tmp_path: Path) -> None:
    first = date(1800, 1, 1)
    days = [{"day": (first + timedelta(days=i)).isoformat(), "v": 1.0} for i in range(3000)]
    with data.from_records(days, _limits(tmp_path, max_result_rows=500)) as table:
        prof = profile.profile(table, masked=set())
        plan = Plan.model_validate(
            {
                "measures": [{"column": "v", "agg": "sum"}],
                "period": {"column": "day", "grain": "day"},
            }
        )
        with pytest.raises(PayloadTooLargeError, match="more than 500 rows"):
            facts_for_plan(table, prof, plan)


# --- uploads bounded by what they decompress to --------------------------------------------------


def _write_parquet(path: Path, table: pa.Table) -> Path:
    pq.write_table(table, path, compression="zstd")
    return path


def test_a_parquet_bomb_is_refused_by_a_scan_not_a_load(tmp_path: Path) -> None:
    """105 KB of Parquet, a million copies of one 1,000-character string: the footer says it
    is small (dictionary encoded), the scan says 1 GB."""
    bomb = _write_parquet(
        tmp_path / "bomb.parquet",
        pa.table({"s": pa.array(["y" * 1000] * 1_000_000).dictionary_encode()}),
    )
    assert bomb.stat().st_size < 1024 * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with pytest.raises(PayloadTooLargeError, match=f"at most {256 * MiB} are allowed"):
        data.from_file(bomb, "parquet", _limits(tmp_path))
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak
    assert grown < 200 * MiB  # not the gigabyte, not the 256 MiB either


def test_the_parquet_footer_is_checked_before_any_data(tmp_path: Path) -> None:
    wide = _write_parquet(tmp_path / "wide.parquet", pa.table({f"c{i}": [1] for i in range(12)}))
    with pytest.raises(PayloadTooLargeError, match="12 columns; at most 10"):
        data.from_file(wide, "parquet", _limits(tmp_path, max_columns=10))
    long = _write_parquet(tmp_path / "long.parquet", pa.table({"n": list(range(5000))}))
    with pytest.raises(PayloadTooLargeError, match="more than 1000 rows"):
        data.from_file(long, "parquet", _limits(tmp_path, max_rows=1000))
    plain = _write_parquet(
        tmp_path / "plain.parquet", pa.table({"n": pa.array(range(200_000), pa.int64())})
    )
    with pytest.raises(PayloadTooLargeError, match="once decompressed; at most 1000000"):
        data.from_file(plain, "parquet", _limits(tmp_path, max_decoded_bytes=1_000_000))


def test_a_parquet_cell_over_the_limit_is_named(tmp_path: Path) -> None:
    path = _write_parquet(tmp_path / "cell.parquet", pa.table({"note": ["ok", "z" * 50]}))
    with pytest.raises(PayloadTooLargeError, match="column 'note' holds a value of 50"):
        data.from_file(path, "parquet", _limits(tmp_path, max_cell_chars=20))


def test_nested_parquet_is_refused_before_the_scan(tmp_path: Path) -> None:
    path = _write_parquet(tmp_path / "nested.parquet", pa.table({"l": [[1, 2], [3]]}))
    with pytest.raises(BadRequestError, match="nested values"):
        data.from_file(path, "parquet", _limits(tmp_path))


@pytest.mark.parametrize("loader", ["records", "csv-text", "json-file"])
def test_other_formats_are_bounded_by_decoded_size_too(tmp_path: Path, loader: str) -> None:
    # Twelve rows of a date, a short text and a number: about 430 bytes.
    with pytest.raises(PayloadTooLargeError, match="once decompressed; at most 300"):
        _loaders(tmp_path)[loader](_limits(tmp_path, max_decoded_bytes=300))


def test_a_saved_dataset_reloads_the_same(tmp_path: Path) -> None:
    limits = _limits(tmp_path)
    with data.from_records(ROWS, limits) as table:
        digest = data.dataset_hash(table)
        data.save_parquet(table, tmp_path / "store" / "v1.parquet")
    with data.from_file(tmp_path / "store" / "v1.parquet", "parquet", limits) as again:
        assert data.dataset_hash(again) == digest
    assert list((tmp_path / "duck").iterdir()) == []


def test_a_failed_load_leaves_no_directory_behind(tmp_path: Path) -> None:
    with pytest.raises(BadRequestError):
        data.from_csv("a,b\n1,2\n3\n", _limits(tmp_path))
    with pytest.raises(BadRequestError):
        data.from_file(_write(tmp_path / "bad.json", "{not json"), "json", _limits(tmp_path))
    with pytest.raises(BadRequestError):
        data.from_file(_write(tmp_path / "bad.parquet", "PAR1 nope"), "parquet", _limits(tmp_path))
    assert list((tmp_path / "duck").iterdir()) == []


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_bytes_in_memory_are_estimated_from_types_and_text() -> None:
    types = {"a": "BIGINT", "s": "VARCHAR"}
    assert data._decoded_bytes(10, types, {"s": 1000}) == 10 * (8 + 16) + 1000


def test_the_csv_loader_reads_from_an_unresolved_path(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.csv").write_text("a,b\n1,2\n")
    relative = tmp_path / "sub" / ".." / "sub" / "x.csv"
    with data.from_file(relative, "csv", _limits(tmp_path)) as table:
        assert table.row_count == 1


def test_pyarrow_can_read_what_was_saved(tmp_path: Path) -> None:
    with data.from_records(ROWS, _limits(tmp_path)) as table:
        data.save_parquet(table, tmp_path / "x.parquet")
    assert pq.read_table(io.BytesIO((tmp_path / "x.parquet").read_bytes())).num_rows == len(ROWS)


def test_spill_left_by_dead_processes_is_swept(tmp_path: Path) -> None:
    dead = tmp_path / "billumy-duckdb-999999999-abc"
    (dead / "spill").mkdir(parents=True)
    (dead / "spill" / "duckdb_temp_storage.tmp").write_bytes(b"x" * 1000)
    with data.from_records(ROWS, Limits(temp_directory=tmp_path)) as table:
        mine = next(tmp_path.glob(f"billumy-duckdb-{os.getpid()}-*"))
        assert sandbox.sweep(tmp_path) == 1
        assert not dead.exists() and mine.exists()
        assert table.row_count == len(ROWS)
