"""Sending the evaluation cases to a real server and timing them.

Each dataset is uploaded once (``POST /datasets``, the way a backend sends a file) and each
case asks ``POST /api/insights`` about it with ``stream: true``: the time to the answer is
measured from sending the request to receiving the ``answer`` event, which is what a user
waits for; the rest of the stream (the model's narrative, if asked for, then the stored
record) is read to the end and scored (:mod:`billumy.evaluation.scoring`).

The cases run one at a time: the figures are latencies of one request on an idle server, the
same on every run, not a load test.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from billumy.evaluation.cases import Case, CaseSet
from billumy.evaluation.scoring import CaseScore, failed, score

__all__ = [
    "Asked",
    "CaseResult",
    "EvalClient",
    "EvalError",
    "Report",
    "percentile",
    "run_cases",
    "select",
]


class EvalError(Exception):
    """The evaluation could not run at all (server unreachable, bad case selection)."""


def percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank ``p``-th percentile (p50 of 1, 2, 3, 4 is 2): a value that was
    measured, never an interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Asked:
    """One streamed insight request: the stored record (``None`` on error), the seconds to
    the ``answer`` event and to the end of the stream, and the error if any."""

    record: dict[str, Any] | None
    time_to_answer: float | None
    total: float
    error: str | None = None


class EvalClient:
    """The HTTP side of an evaluation: datasets uploaded once, questions streamed."""

    def __init__(self, url: str, key: str | None, *, timeout: float = 300.0) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)
        self._datasets: dict[Path, str] = {}

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> EvalClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check(self) -> None:
        """Raise :class:`EvalError` unless the server answers ``/health``."""
        try:
            response = self.http.get("/health", timeout=10)
        except httpx.HTTPError as exc:
            raise EvalError(f"cannot reach {self.http.base_url}: {exc}") from exc
        if response.status_code != 200:
            raise EvalError(f"{self.http.base_url}/health answered {response.status_code}")

    def upload(self, path: Path, name: str | None = None) -> str:
        """The id of ``path`` uploaded as a dataset (once per client; the server keeps the
        same version for the same content)."""
        if path not in self._datasets:
            response = self.http.post(
                "/datasets",
                files={"file": (path.name, path.read_bytes(), "text/csv")},
                data={"name": name or path.name},
            )
            if response.status_code not in (200, 201):
                raise EvalError(
                    f"upload of {path.name}: HTTP {response.status_code}: {response.text[:300]}"
                )
            self._datasets[path] = str(response.json()["id"])
        return self._datasets[path]

    def ask(self, body: dict[str, Any]) -> Asked:
        """Stream one ``/api/insights`` request (``stream`` is forced on) and time it."""
        started = time.perf_counter()
        answered: float | None = None
        record: dict[str, Any] | None = None
        try:
            with self.http.stream("POST", "/api/insights", json={**body, "stream": True}) as r:
                if r.status_code != 200:
                    r.read()
                    error = f"HTTP {r.status_code}: {r.text[:300]}"
                    return Asked(None, None, time.perf_counter() - started, error)
                for line in r.iter_lines():
                    if not line.strip():
                        continue
                    event = orjson.loads(line)
                    kind = event.get("type")
                    if kind == "answer" and answered is None:
                        answered = time.perf_counter() - started
                    elif kind in (None, "error") and "error" in event:
                        # The NDJSON streams' in-band error line: {"error", "request_id"}.
                        error = f"in-band error: {event.get('error')}"
                        return Asked(None, answered, time.perf_counter() - started, error)
                    elif kind == "insights":
                        record = {k: v for k, v in event.items() if k != "type"}
        except (httpx.HTTPError, orjson.JSONDecodeError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            return Asked(None, answered, time.perf_counter() - started, error)
        total = time.perf_counter() - started
        if record is None:
            return Asked(None, answered, total, "the stream ended before the insights record")
        if answered is None:
            return Asked(record, None, total, "the stream had no answer event")
        return Asked(record, answered, total)


@dataclass
class CaseResult:
    case: Case
    score: CaseScore
    time_to_answer: float | None = None
    total: float | None = None
    response: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        kept = ("answer", "plan", "plan_source", "facts", "profile", "insights", "timings")
        response = self.response or {}
        return {
            "id": self.case.id,
            "category": self.case.category,
            "dataset": self.case.dataset,
            "language": self.case.language,
            "question": self.case.question,
            "time_to_answer_s": _rounded(self.time_to_answer),
            "total_s": _rounded(self.total),
            **self.score.as_dict(),
            "response": {k: response.get(k) for k in kept} if self.response else None,
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


@dataclass
class Report:
    url: str
    narrative: bool
    cases_file: Path
    results: list[CaseResult] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Counts over the cases, and p50/p95 of the time to the answer."""
        scores = [r.score for r in self.results]
        times = [r.time_to_answer for r in self.results if r.time_to_answer is not None]
        out: dict[str, Any] = {
            "cases": len(scores),
            "passed": sum(s.passed for s in scores),
            "plan_covers": sum(s.plan_covers for s in scores),
            "answer_complete": sum(s.answer_complete for s in scores),
            "language_ok": sum(s.language_ok for s in scores),
            "wrong_numbers": sum(s.wrong_numbers for s in scores),
            "false_verified": sum(s.false_verified for s in scores),
            "must_not_hits": sum(s.must_not_hits for s in scores),
            "errors": sum(s.error is not None for s in scores),
            "time_to_answer_p50_s": _rounded(percentile(times, 50)),
            "time_to_answer_p95_s": _rounded(percentile(times, 95)),
        }
        for name, key in (("by_category", "category"), ("by_language", "language")):
            groups: dict[str, dict[str, int]] = {}
            for result in self.results:
                group = groups.setdefault(getattr(result.case, key), {"cases": 0, "passed": 0})
                group["cases"] += 1
                group["passed"] += result.score.passed
            out[name] = groups
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "narrative": self.narrative,
            "cases_file": str(self.cases_file),
            "summary": self.summary(),
            "results": [r.as_dict() for r in self.results],
        }

    @property
    def all_passed(self) -> bool:
        return all(r.score.passed for r in self.results)


def select(cases: CaseSet, only: Sequence[str] | None) -> list[Case]:
    """The cases named in ``only`` (ids, each possibly comma-separated), in file order; all
    of them when ``only`` is empty. An unknown id is an :class:`EvalError`."""
    wanted = [i.strip() for raw in only or [] for i in raw.split(",") if i.strip()]
    if not wanted:
        return list(cases.cases)
    known = {c.id for c in cases.cases}
    unknown = [i for i in wanted if i not in known]
    if unknown:
        raise EvalError(f"no such case: {', '.join(unknown)}")
    return [c for c in cases.cases if c.id in wanted]


def run_cases(
    client: EvalClient,
    cases: CaseSet,
    selected: Sequence[Case],
    *,
    narrative: bool = False,
    on_case: Callable[[Case, CaseResult | None], None] | None = None,
) -> Report:
    """Ask every case in ``selected`` and score it. ``on_case(case, None)`` is called before
    each case and ``on_case(case, result)`` after it (for progress)."""
    report = Report(url=str(client.http.base_url), narrative=narrative, cases_file=cases.path)
    needed = {c.dataset for c in selected}
    uploaded: dict[str, str] = {}
    upload_errors: dict[str, str] = {}
    for name in sorted(needed):
        try:
            uploaded[name] = client.upload(cases.datasets[name].path, name)
        except (EvalError, httpx.HTTPError) as exc:
            upload_errors[name] = str(exc)
    for case in selected:
        if on_case:
            on_case(case, None)
        if case.dataset in upload_errors:
            result = CaseResult(case, failed(case, upload_errors[case.dataset]))
        else:
            body = {
                "dataset_id": uploaded[case.dataset],
                "question": case.question,
                "narrative": narrative,
            }
            asked = client.ask(body)
            if asked.error is not None or asked.record is None:
                case_score = failed(case, asked.error or "no record")
            else:
                case_score = score(case, asked.record)
            result = CaseResult(case, case_score, asked.time_to_answer, asked.total, asked.record)
        report.results.append(result)
        if on_case:
            on_case(case, result)
    return report
