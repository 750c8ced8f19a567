"""The evaluation for a person: progress while it runs, then a table per case, the failures
with their reasons, and the totals (the same figures as the JSON summary)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from billumy.evaluation.cases import Case
from billumy.evaluation.runner import CaseResult, Report

__all__ = ["print_report", "progress"]

OK, NO = "✓", "✗"
TABLE_WIDTH = 136


@contextmanager
def progress(console: Console, total: int) -> Iterator[Callable[[Case, CaseResult | None], None]]:
    """A progress bar on ``console``; yields the ``on_case`` callback of
    :func:`~billumy.evaluation.runner.run_cases`."""
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    task = bar.add_task("insights eval", total=total)

    def on_case(case: Case, result: CaseResult | None) -> None:
        if result is None:
            bar.update(task, description=f"asking {escape(case.id)}")
        else:
            bar.advance(task)

    with bar:
        yield on_case


def _mark(good: bool) -> str:
    return f"[green]{OK}[/green]" if good else f"[red]{NO}[/red]"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _count(value: int) -> str:
    return "0" if value == 0 else f"[red]{value}[/red]"


def print_report(report: Report, console: Console) -> None:
    """The per-case table, the failures and the totals."""
    table = Table(title="insights evaluation", title_justify="left")
    for name, justify in (
        ("case", "left"),
        ("category", "left"),
        ("lang", "left"),
        ("plan", "center"),
        ("answer", "center"),
        ("lang ok", "center"),
        ("wrong", "right"),
        ("false ver.", "right"),
        ("answer s", "right"),
        ("result", "center"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in report.results:
        s = r.score
        table.add_row(
            escape(r.case.id),
            r.case.category,
            r.case.language,
            f"{_mark(s.plan_covers)} {s.covered}/{s.expected}",
            f"{_mark(s.answer_complete)} {s.stated}/{s.expected}",
            _mark(s.language_ok),
            _count(s.wrong_numbers),
            _count(s.false_verified),
            _seconds(r.time_to_answer),
            "[green]pass[/green]" if s.passed else "[red]FAIL[/red]",
        )
    if not console.is_terminal:
        # Piped to a file or a CI log, Rich would squeeze the table into 80 columns.
        console = Console(file=console.file, width=max(console.width, TABLE_WIDTH))
    console.print(table)
    failures = [r for r in report.results if not r.score.passed]
    if failures:
        console.print("\n[bold]Failures[/bold]")
        for r in failures:
            question = escape(r.case.question)
            console.print(f"[bold]{escape(r.case.id)}[/bold] ({question})", soft_wrap=True)
            for problem in r.score.problems:
                console.print(f"  - {escape(problem)}", soft_wrap=True, highlight=False)
    summary = report.summary()

    def say(text: str) -> None:
        console.print(text, soft_wrap=True, highlight=False)

    n = summary["cases"]
    say("\n[bold]Totals[/bold]")
    say(f"passed {summary['passed']}/{n}")
    say(
        f"plan covers the question {summary['plan_covers']}/{n}; answer has every expected "
        f"fact {summary['answer_complete']}/{n}; language right {summary['language_ok']}/{n}"
    )
    say(
        f"wrong numbers {summary['wrong_numbers']} (must be 0); false verified claims "
        f"{summary['false_verified']} (must be 0); must_not matches {summary['must_not_hits']}; "
        f"errors {summary['errors']}"
    )
    timed = sum(r.time_to_answer is not None for r in report.results)
    say(
        f"time to answer (stream, to the answer event): p50 "
        f"{_seconds(summary['time_to_answer_p50_s'])} s, p95 "
        f"{_seconds(summary['time_to_answer_p95_s'])} s over {timed} requests"
        f"{' with narrative' if report.narrative else ''}"
    )
    for name in ("by_category", "by_language"):
        parts = [f"{k} {v['passed']}/{v['cases']}" for k, v in summary[name].items()]
        say(f"{name.replace('_', ' ')}: {', '.join(parts)}")
