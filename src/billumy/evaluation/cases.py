"""The evaluation cases: questions about small datasets whose right answers are known.

A case file is TOML (read with :mod:`tomllib`, no dependency). It names its datasets, CSV
files in ``data/`` beside it, each with a ``view``: DuckDB SQL that types the raw text columns
(a table ``raw`` where every column is VARCHAR). The view is written by the case author, not
by Billumy's loader, so decimal commas, ``dd/mm/yyyy`` dates and ``R$`` text are parsed by
SQL anyone can read: the expected numbers never depend on the code under test.

Each case has an ``id``, a ``category`` (one of :data:`CATEGORIES`), a ``dataset``, a
``question``, the ``language`` the answer must be in (``pt-BR`` or ``en``), ``expect`` (what
the answer must state, see :class:`Expected`) and ``must_not`` (regular expressions, matched
case-insensitively, that must not match the answer). Its ``reference`` is a DuckDB query over
the view ``data`` whose rows are exactly its expected items: columns among ``segment``,
``period`` and ``value``, one row per item that states a number or names a label.
:func:`reference_rows` runs it; the unit tests check that every literal value in the file
equals its reference (rounded to 2 decimals). A question the data cannot answer has no
reference but ``absent``: words that no column name of the dataset may contain.
"""

from __future__ import annotations

import math
import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

__all__ = [
    "CATEGORIES",
    "LANGUAGES",
    "Case",
    "CaseFileError",
    "CaseSet",
    "DatasetSpec",
    "Expected",
    "default_cases_path",
    "fold",
    "load_cases",
    "reference_problems",
    "reference_rows",
]

CATEGORIES = (
    "top",
    "bottom",
    "total",
    "trend",
    "anomaly_yes",
    "anomaly_no",
    "period_comparison",
    "segment_comparison",
    "filter",
    "share",
    "multi_part",
    "unanswerable",
)
LANGUAGES = ("pt-BR", "en")
REFERENCE_COLUMNS = ("segment", "period", "value")

_CASE_KEYS = {
    "id", "category", "dataset", "question", "language", "expect", "must_not", "reference",
    "absent", "note",
}  # fmt: skip
_ITEM_KEYS = {"segment", "period", "value", "pct", "kind", "text_any"}
_PERIOD = re.compile(r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?|-Q[1-4]|-H[12])?$")


class CaseFileError(ValueError):
    """The case file is malformed; ``problems`` lists every problem found, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def fold(text: str) -> str:
    """``text`` lower-cased without accents, one character for each character (so positions
    found in the folded text are positions in ``text``): ``São Paulo`` -> ``sao paulo``."""
    out = []
    for char in text:
        base = unicodedata.normalize("NFKD", char)
        kept = "".join(c for c in base if not unicodedata.combining(c)).lower()
        out.append(kept if len(kept) == 1 else char.lower()[:1] or " ")
    return "".join(out).replace("\xa0", " ").replace("\u202f", " ")


@dataclass(frozen=True)
class Expected:
    """One thing the answer must state.

    ``segment`` and ``period`` are labels: a segment's value as the data writes it
    (``Centro``), a period as ``2024``, ``2024-03``, ``2024-03-11`` (a day or a week's first
    day), ``2024-Q1`` or ``2024-H1``. ``value`` is the number stated for them (in percent
    when ``pct``). ``kind`` optionally names the fact kind that must hold it (``anomaly``).
    ``text_any`` is a list of regular expressions, one of which must match the answer (for
    a yes, a no, or "the data has no cost column")."""

    segment: str | None = None
    period: str | None = None
    value: float | None = None
    pct: bool = False
    kind: str | None = None
    text_any: tuple[str, ...] = ()

    @property
    def labels(self) -> list[tuple[str, str]]:
        """(``segment`` or ``period``, label) for each label this item names."""
        out = []
        if self.segment is not None:
            out.append(("segment", self.segment))
        if self.period is not None:
            out.append(("period", self.period))
        return out

    def describe(self) -> str:
        """The item for a person: ``Centro 2024-04 = 21,063.40``, ``text ~ /Sim/``."""
        if self.text_any:
            return "text ~ " + " | ".join(f"/{p}/" for p in self.text_any)
        named = " ".join(label for _, label in self.labels)
        if self.value is None:
            return named or "?"
        number = f"{self.value:,.2f}{'%' if self.pct else ''}"
        return f"{named} = {number}" if named else number


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    path: Path
    delimiter: str
    view: str
    description: str = ""


@dataclass(frozen=True)
class Case:
    id: str
    category: str
    dataset: str
    question: str
    language: str
    expect: tuple[Expected, ...]
    must_not: tuple[str, ...] = ()
    reference: str | None = None
    absent: tuple[str, ...] = ()
    note: str = ""


@dataclass
class CaseSet:
    path: Path
    datasets: dict[str, DatasetSpec]
    cases: list[Case] = field(default_factory=list)

    def case(self, case_id: str) -> Case:
        for case in self.cases:
            if case.id == case_id:
                return case
        raise KeyError(case_id)


def default_cases_path() -> Path:
    """``evals/insights/cases.toml`` of the working directory, else of the checkout this
    package was installed from (an editable install); the first that exists."""
    relative = Path("evals") / "insights" / "cases.toml"
    here = Path.cwd() / relative
    if here.exists():
        return here
    checkout = Path(__file__).resolve().parents[3] / relative
    return checkout if checkout.exists() else here


def _strings(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _item(raw: Any, where: str, problems: list[str]) -> Expected | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: an expected item must be a table")
        return None
    unknown = set(raw) - _ITEM_KEYS
    if unknown:
        problems.append(f"{where}: unknown keys {sorted(unknown)}")
    text_any = _strings(raw.get("text_any", []))
    if text_any is None:
        problems.append(f"{where}: text_any must be a list of strings")
        text_any = ()
    for pattern in text_any:
        try:
            re.compile(pattern)
        except re.error as exc:
            problems.append(f"{where}: text_any /{pattern}/ does not compile: {exc}")
    value = raw.get("value")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        problems.append(f"{where}: value must be a number")
        value = None
    kind = raw.get("kind")
    if kind is not None and not isinstance(kind, str):
        problems.append(f"{where}: kind must be a fact kind (a string)")
        kind = None
    segment, period = raw.get("segment"), raw.get("period")
    if period is not None and not (isinstance(period, str) and _PERIOD.match(period)):
        problems.append(f"{where}: period {period!r} is not YYYY, YYYY-MM, YYYY-MM-DD, -Qn or -Hn")
    if segment is not None and not isinstance(segment, str):
        problems.append(f"{where}: segment must be a string")
    if not text_any and value is None and segment is None and period is None:
        problems.append(f"{where}: states nothing (needs a value, a label or text_any)")
    if text_any and (value is not None or segment is not None or period is not None):
        problems.append(f"{where}: text_any goes in an item of its own")
    return Expected(
        segment=segment if isinstance(segment, str) else None,
        period=period if isinstance(period, str) else None,
        value=float(value) if value is not None else None,
        pct=bool(raw.get("pct", False)),
        kind=kind,
        text_any=text_any,
    )


def _case(raw: Any, index: int, datasets: dict[str, DatasetSpec], problems: list[str]) -> Case:
    where = f"case {index + 1} ({raw.get('id', '?') if isinstance(raw, dict) else '?'})"
    raw = raw if isinstance(raw, dict) else {}
    unknown = set(raw) - _CASE_KEYS
    if unknown:
        problems.append(f"{where}: unknown keys {sorted(unknown)}")
    for key in ("id", "category", "dataset", "question", "language"):
        if not isinstance(raw.get(key), str) or not raw.get(key):
            problems.append(f"{where}: '{key}' is required (a non-empty string)")
    if raw.get("category") not in CATEGORIES:
        problems.append(f"{where}: category {raw.get('category')!r} is not one of {CATEGORIES}")
    if raw.get("language") not in LANGUAGES:
        problems.append(f"{where}: language {raw.get('language')!r} is not one of {LANGUAGES}")
    if raw.get("dataset") not in datasets:
        problems.append(f"{where}: dataset {raw.get('dataset')!r} is not declared")
    expect_raw = raw.get("expect")
    if not isinstance(expect_raw, list) or not expect_raw:
        problems.append(f"{where}: 'expect' must be a non-empty list")
        expect_raw = []
    items = [_item(x, f"{where} expect[{i}]", problems) for i, x in enumerate(expect_raw)]
    must_not = _strings(raw.get("must_not", []))
    if must_not is None:
        problems.append(f"{where}: must_not must be a list of strings")
        must_not = ()
    for pattern in must_not:
        try:
            re.compile(pattern)
        except re.error as exc:
            problems.append(f"{where}: must_not /{pattern}/ does not compile: {exc}")
    absent = _strings(raw.get("absent", [])) or ()
    reference = raw.get("reference")
    if raw.get("category") == "unanswerable":
        if not absent:
            problems.append(f"{where}: an unanswerable case lists the 'absent' column words")
    elif not isinstance(reference, str) or not reference.strip():
        problems.append(f"{where}: 'reference' (a DuckDB query) is required")
    return Case(
        id=str(raw.get("id", "")),
        category=str(raw.get("category", "")),
        dataset=str(raw.get("dataset", "")),
        question=str(raw.get("question", "")),
        language=str(raw.get("language", "")),
        expect=tuple(i for i in items if i is not None),
        must_not=must_not,
        reference=reference if isinstance(reference, str) else None,
        absent=absent,
        note=str(raw.get("note", "")),
    )


def load_cases(path: Path) -> CaseSet:
    """The cases of ``path``, checked; :class:`CaseFileError` lists every problem found."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CaseFileError([f"{path}: {exc}"]) from exc
    problems: list[str] = []
    datasets: dict[str, DatasetSpec] = {}
    for name, spec in (raw.get("datasets") or {}).items():
        file = path.parent / "data" / name
        if not file.is_file():
            problems.append(f"dataset {name}: {file} does not exist")
        if not isinstance(spec, dict) or not isinstance(spec.get("view"), str):
            problems.append(f"dataset {name}: needs a 'view' (SQL over the table raw)")
            continue
        datasets[name] = DatasetSpec(
            name=name,
            path=file,
            delimiter=str(spec.get("delimiter", ",")),
            view=spec["view"],
            description=str(spec.get("description", "")),
        )
    cases = [_case(c, i, datasets, problems) for i, c in enumerate(raw.get("cases") or [])]
    seen: set[str] = set()
    for case in cases:
        if case.id in seen:
            problems.append(f"case id {case.id!r} is used twice")
        seen.add(case.id)
    if problems:
        raise CaseFileError(problems)
    return CaseSet(path=path, datasets=datasets, cases=cases)


def _connect(spec: DatasetSpec) -> duckdb.DuckDBPyConnection:
    """A DuckDB database with the dataset as ``raw`` (all text) and the case file's typed
    view of it as ``data``."""
    con = duckdb.connect()
    literal = str(spec.path).replace("'", "''")
    delimiter = spec.delimiter.replace("'", "''")
    con.execute(
        f"CREATE TABLE raw AS SELECT * FROM read_csv('{literal}', delim = '{delimiter}', "  # noqa: S608
        "header = true, all_varchar = true, quote = '\"')"
    )
    con.execute(f"CREATE VIEW data AS {spec.view}")
    return con


def reference_rows(cases: CaseSet, case: Case) -> list[dict[str, Any]]:
    """The rows of ``case``'s reference query on its dataset (empty without a query)."""
    if not case.reference:
        return []
    con = _connect(cases.datasets[case.dataset])
    try:
        result = con.execute(case.reference)
        names = [str(d[0]) for d in result.description or []]
        return [dict(zip(names, row, strict=True)) for row in result.fetchall()]
    finally:
        con.close()


def _key(segment: Any, period: Any, value: Any) -> tuple[str, str, str]:
    number = "" if value is None else f"{round(float(value), 2):.2f}"
    return (
        "" if segment is None else str(segment),
        "" if period is None else str(period),
        number,
    )


def reference_problems(cases: CaseSet, case: Case) -> list[str]:
    """Where ``case``'s literal expected items differ from its reference query (or, for a
    question the data cannot answer, where a column has a word it claims is absent)."""
    problems: list[str] = []
    if case.absent:
        columns = [fold(c) for c in _columns(cases.datasets[case.dataset])]
        for word in case.absent:
            holders = [c for c in columns if fold(word) in c]
            if holders:
                problems.append(f"{case.id}: '{word}' is in the column names {holders}")
    if not case.reference:
        return problems
    rows = reference_rows(cases, case)
    for row in rows:
        extra = set(row) - set(REFERENCE_COLUMNS)
        if extra:
            problems.append(f"{case.id}: reference returns unknown columns {sorted(extra)}")
            return problems
        value = row.get("value")
        if value is not None and not math.isfinite(float(value)):
            problems.append(f"{case.id}: reference value {value} is not finite")
    expected = sorted(_key(i.segment, i.period, i.value) for i in case.expect if not i.text_any)
    computed = sorted(_key(r.get("segment"), r.get("period"), r.get("value")) for r in rows)
    if expected != computed:
        problems.append(
            f"{case.id}: expected items {expected} but the reference query gives {computed}"
        )
    return problems


def _columns(spec: DatasetSpec) -> list[str]:
    con = _connect(spec)
    try:
        return [str(d[0]) for d in con.execute("SELECT * FROM raw LIMIT 0").description or []]
    finally:
        con.close()
