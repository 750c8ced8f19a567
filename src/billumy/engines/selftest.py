"""``billumy selftest``: does the model runtime run on this machine?

The default model is loaded in a child process, which evaluates a prompt of a few hundred
tokens and generates a few more. A child that dies (SIGILL from an instruction this CPU rejects,
SIGSEGV in llama.cpp) cannot take the caller with it, and the report names the signal and what
to do. ``make install`` runs it after building llama.cpp and rebuilds once with portable CPU
features when it fails (``scripts/llama_build.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from billumy.engines.supervisor import exit_reason

# About 400 tokens of the kind of text the service reads, in both of its languages.
_PROMPT = (
    "Vendas por região no trimestre: Sul 1.200,50; Sudeste 3.400,00; Nordeste 980,25. "
    "Sales by region this quarter: South 1,200.50; Southeast 3,400.00; Northeast 980.25. "
) * 5

_ADVICE = {
    "SIGILL": (
        "llama.cpp ran an instruction this CPU rejects (or one of its AMX kernels, which crash "
        "on some machines): it was compiled for other CPU features. Run `make install`, which "
        "rebuilds it for this CPU and falls back to a portable build, or "
        "`.venv/bin/python scripts/llama_build.py install --profile portable`."
    ),
    "SIGSEGV": (
        "llama.cpp crashed with a memory fault. Rebuild it for this CPU with `make install` (or "
        "`.venv/bin/python scripts/llama_build.py install --profile portable`); if it persists, "
        "report it with the build record printed above."
    ),
    "SIGKILL": "the process was killed, most likely for lack of memory.",
}


@dataclass
class SelfTestResult:
    ok: bool
    reason: str  # "ok", "SIGILL", "exit code 1", "timeout"
    detail: dict[str, Any]
    seconds: float

    @property
    def advice(self) -> str:
        if self.ok:
            return ""
        if self.reason == "timeout":
            return "the model did not answer in time; the machine may be overloaded."
        return _ADVICE.get(self.reason, _ADVICE["SIGSEGV"] if "SIG" in self.reason else "")


def build_record() -> dict[str, Any]:
    """How llama-cpp-python was built here (written by scripts/llama_build.py), if known."""
    try:
        loaded = json.loads((Path(sys.prefix) / "billumy-llama-build.json").read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def run(
    model_path: Path, *, threads: int | None = None, timeout_s: float = 300.0
) -> SelfTestResult:
    """Run the test in a child process and report how it ended."""
    started = time.monotonic()
    command = [sys.executable, "-m", "billumy.engines.selftest", str(model_path)]
    if threads:
        command += ["--threads", str(threads)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return SelfTestResult(False, "timeout", {}, time.monotonic() - started)
    seconds = time.monotonic() - started
    detail: dict[str, Any] = {}
    lines = done.stdout.strip().splitlines()
    if lines:
        try:
            detail = json.loads(lines[-1])
        except ValueError:
            detail = {}
    if done.returncode != 0:
        detail["stderr"] = done.stderr[-2000:]
    return SelfTestResult(done.returncode == 0, exit_reason(done.returncode), detail, seconds)


def _child(model_path: str, threads: int) -> None:
    import llama_cpp
    from llama_cpp import Llama

    info = llama_cpp.llama_print_system_info().decode(errors="replace")
    llm = Llama(model_path=model_path, n_ctx=1024, n_threads=threads, verbose=False)
    tokens = llm.tokenize(_PROMPT.encode(), add_bos=True, special=False)
    started = time.perf_counter()
    generated = 0
    for _ in llm.generate(tokens, temp=0.0):
        generated += 1
        if generated >= 8:
            break
    elapsed = time.perf_counter() - started
    print(
        json.dumps(
            {
                "prompt_tokens": len(tokens),
                "generated_tokens": generated,
                "seconds": round(elapsed, 3),
                "system_info": info.strip(),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="The child side of `billumy selftest`.")
    parser.add_argument("model_path")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    _child(args.model_path, args.threads)
