"""The insights evaluation set and the time to an answer on 100,000 rows, on a real server.

Starts a real ``billumy serve`` on a free port with a temporary data dir (the tests' starter,
``tests/e2e/server.py``, as the other benchmarks use), then:

1. runs the evaluation set (``evals/insights/cases.toml``, or the file given with
   ``--cases``, such as the held-out ``evals/insights/holdout.toml``) through the same code as
   ``billumy eval`` (:mod:`billumy.evaluation`) and prints its table: which cases pass, why
   the others fail, wrong numbers, false verified claims, p50/p95 time to the answer;
2. uploads a 100,000-row CSV once (``POST /datasets``; the 10-column file of
   ``benchmarks/insights.py``), asks ``--questions`` questions about it with ``narrative:
   false, stream: true`` after one untimed warm-up, and prints the p50 and p95 time from
   sending each request to receiving its ``answer`` event, against the target: p50 under
   1.5 s, PASS or MISS. Each question's plan source is shown: a question the rules cannot
   read goes to the model, which is where seconds go.

Run from the repository root::

    .venv/bin/python benchmarks/insights_eval.py
    .venv/bin/python benchmarks/insights_eval.py --rows 0            # the evaluation only
    .venv/bin/python benchmarks/insights_eval.py --rows 0 --cases evals/insights/holdout.toml
    .venv/bin/python benchmarks/insights_eval.py --no-eval --questions 20

This is a benchmark, not a test: it exits 0 whatever the figures, unless something crashed.
Timings swing on a shared machine: run it twice before trusting a figure.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
from pathlib import Path

import orjson
from rich.console import Console

from billumy.evaluation.cases import CaseFileError, default_cases_path, load_cases
from billumy.evaluation.report import print_report
from billumy.evaluation.runner import EvalClient, percentile, run_cases, select

# benchmarks/insights.py writes the 10-column CSV (run as a script, this folder is importable).
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from insights import make_csv

from tests.e2e.server import Server

TARGET_P50_S = 1.5
QUESTIONS = [
    "Which region had the highest revenue?",
    "Qual canal vendeu mais?",
    "How did revenue change month by month?",
    "Qual foi a receita total em 2024?",
    "What share of revenue came from Sul?",
    "Qual produto teve a menor receita?",
    "Did any region's revenue drop sharply?",
    "Compare web and app revenue.",
    "Quantas unidades foram vendidas por canal?",
    "What was the average price by region?",
    "Como a receita evoluiu por trimestre?",
    "Which channel had the most orders in 2023?",
]


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def evaluate(
    client: EvalClient,
    narrative: bool,
    console: Console,
    path: Path | None = None,
    json_out: Path | None = None,
) -> None:
    cases = load_cases(path or default_cases_path())
    selected = select(cases, None)
    progress(f"evaluation: {len(selected)} cases of {cases.path}")

    def on_case(case: object, result: object) -> None:
        if result is None:
            progress(f"  {getattr(case, 'id', case)}")

    report = run_cases(client, cases, selected, narrative=narrative, on_case=on_case)
    print_report(report, console)
    if json_out is not None:
        json_out.write_bytes(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2))
        progress(f"raw results: {json_out}")


def time_to_answer(client: EvalClient, rows: int, questions: int, folder: Path) -> None:
    path = make_csv(rows, folder)
    progress(f"{rows:,} rows: uploading {path.stat().st_size / 1e6:.1f} MB once")
    dataset = client.upload(path, path.name)
    asked = [QUESTIONS[n % len(QUESTIONS)] for n in range(questions)]
    warm = client.ask({"dataset_id": dataset, "question": asked[0], "narrative": False})
    if warm.error:
        raise RuntimeError(f"warm-up request failed: {warm.error}")
    times: list[float] = []
    print(f"\ntime to the answer event on {rows:,} rows (narrative off, stream on):")
    for question in asked:
        result = client.ask({"dataset_id": dataset, "question": question, "narrative": False})
        if result.error or result.time_to_answer is None:
            print(f"  {'error':>7}  {question}: {result.error}")
            continue
        times.append(result.time_to_answer)
        source = (result.record or {}).get("plan_source")
        print(f"  {result.time_to_answer:6.2f} s  plan {source:<5}  {question}")
    p50, p95 = percentile(times, 50), percentile(times, 95)
    if p50 is None or p95 is None:
        print("no request answered")
        return
    verdict = "PASS" if p50 < TARGET_P50_S else "MISS"
    print(
        f"p50 {p50:.2f} s, p95 {p95:.2f} s over {len(times)} questions; "
        f"target p50 < {TARGET_P50_S} s: {verdict}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows to time (0 skips)")
    parser.add_argument("--questions", type=int, default=12, help="timed questions (12)")
    parser.add_argument("--no-eval", action="store_true", help="skip the evaluation set")
    parser.add_argument("--narrative", action="store_true", help="evaluation with narrative")
    parser.add_argument(
        "--cases",
        type=Path,
        default=None,
        help="case file (default: evals/insights/cases.toml; e.g. evals/insights/holdout.toml)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the raw results here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    if args.cases is not None and not args.no_eval:
        try:
            load_cases(args.cases)  # a bad file fails here, before a server starts
        except CaseFileError as exc:
            print(f"bad case file {args.cases}:\n{exc}", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="billumy-bench-eval-") as tmp:
        progress("starting billumy serve")
        data_dir = Path(tmp) / "server"
        data_dir.mkdir()
        server = Server(data_dir=data_dir, api_key=f"bk_bench-{secrets.token_hex(16)}").start()
        try:
            with EvalClient(server.url, str(server.api_key)) as c:
                c.check()
                if not args.no_eval:
                    evaluate(c, args.narrative, console, args.cases, args.json)
                if args.rows:
                    time_to_answer(c, args.rows, args.questions, Path(tmp))
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
