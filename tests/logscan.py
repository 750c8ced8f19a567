"""The scan, after the whole suite, of every log it produced for API keys and prompt text.

Billumy never logs a key, and logs a prompt only with ``log_prompts`` on. While the suite runs,
``tests/e2e/server.py`` and the watchers in ``tests/logwatch.py`` register with ``SESSION`` the
logs (server log files, the stderr of ``billumy`` commands, in-process log records) and the
secrets (keys, upstream credentials, the prompts the tests sent). ``pytest_sessionfinish`` in
``tests/conftest.py`` scans them and fails the run on any finding.
"""

from __future__ import annotations

import bisect
import json
import re
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

# A Billumy key (``bk_`` and 43 url-safe characters); the stored 8-character prefix is shorter.
KEY_PATTERN = re.compile(r"bk_[A-Za-z0-9_-]{20,}")
# An OpenAI-style key, as upstream deployments carry.
UPSTREAM_KEY_PATTERN = re.compile(r"\bsk-[A-Za-z0-9_-]{16,}")
# ``scheme://user:password@``: a URL that carries a password.
URL_CREDENTIALS = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/@:\"']*:[^\s/@\"']+@", re.IGNORECASE)
MIN_SECRET = 12  # shorter values ("x", "Bearer") would match innocent text
MIN_PROMPT = 16  # likewise "Oi", "Say hi": words a log may hold for other reasons
PROMPT_PREFIX = 48  # a log that cuts a prompt short still holds its beginning
PROMPT = "prompt"


def shown(value: str, keep: int = 6) -> str:
    """Enough of a secret to recognise it in a report, never the whole of it."""
    return f"{value[:keep]}… ({len(value)} chars)"


def is_prompt(text: str) -> bool:
    """Long enough, and words rather than numbers, to be told from ordinary log text."""
    return len(text) >= MIN_PROMPT and any(c.isalpha() for c in text)


@dataclass(frozen=True)
class Finding:
    log: str
    line: int
    kind: str
    value: str  # redacted, see ``shown``
    excerpt: str  # the line with every secret found in it redacted

    def __str__(self) -> str:
        return f"{self.log}:{self.line}: {self.kind} {self.value}\n    {self.excerpt}"


@dataclass
class Log:
    """One log: a file (read at the scan, or the last snapshot when it is gone) or text."""

    name: str
    path: Path | None = None
    text: str = ""
    source: str = "log"  # what wrote it, for the summary: "billumy serve", ...
    allow_prompts: bool = False  # its process ran with ``log_prompts`` on
    # Started with no key, ``billumy serve`` creates an admin key and prints it once, alone on
    # a line of stderr: the one place a key may appear.
    prints_admin_key: bool = False

    def snapshot(self) -> None:
        if self.path is not None and self.path.exists():
            self.text = self.path.read_text(errors="replace")

    def read(self) -> str:
        self.snapshot()
        return self.text


def _forms(value: str) -> set[str]:
    """The value as it may stand in a log line: raw, and escaped inside a JSON string."""
    return {
        value,
        json.dumps(value, ensure_ascii=False)[1:-1],
        json.dumps(value)[1:-1],
    }


def scan_text(
    name: str,
    text: str,
    secrets: dict[str, str],
    prompts: Iterable[str] = (),
    *,
    allow_prompts: bool = False,
    prints_admin_key: bool = False,
) -> list[Finding]:
    """Every line of ``text`` holding one of ``secrets`` (value -> kind), a key or a URL
    password by their shape, or (unless ``allow_prompts``) the beginning of a prompt."""
    needles = {v: kind for v, kind in secrets.items() if len(v) >= MIN_SECRET}
    if not allow_prompts:
        for prompt in prompts:
            if is_prompt(prompt):
                needles.setdefault(prompt[:PROMPT_PREFIX], PROMPT)
    lines = text.split("\n")
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    exempt: set[int] = set()
    if prints_admin_key:
        alone = [i for i, line in enumerate(lines) if KEY_PATTERN.fullmatch(line.strip())]
        exempt.update(alone[:1])

    hits: dict[int, dict[str, str]] = {}  # line index -> {matched text: kind}
    for needle, kind in needles.items():
        for form in _forms(needle):
            at = text.find(form)
            while at != -1:
                hits.setdefault(bisect.bisect_right(starts, at) - 1, {})[form] = kind
                at = text.find(form, at + 1)
    shapes = (
        (KEY_PATTERN, "key (by its shape)"),
        (UPSTREAM_KEY_PATTERN, "upstream key (by its shape)"),
        (URL_CREDENTIALS, "URL password"),
    )
    for pattern, kind in shapes:
        for match in pattern.finditer(text):
            found = hits.setdefault(bisect.bisect_right(starts, match.start()) - 1, {})
            if not any(match.group() in known or known in match.group() for known in found):
                found[match.group()] = kind

    findings = []
    for index in sorted(hits.keys() - exempt):
        excerpt = lines[index]
        for value in sorted(hits[index], key=len, reverse=True):
            excerpt = excerpt.replace(value, "<redacted>")
        for value, kind in hits[index].items():
            findings.append(Finding(name, index + 1, kind, shown(value), excerpt.strip()[:200]))
    return findings


@dataclass
class LogScan:
    """The logs of a test session and what must not be in them."""

    logs: dict[str, Log] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)  # value -> kind
    prompts: set[str] = field(default_factory=set)
    allowed: int = 0  # prompt lines the last scan let pass in ``log_prompts`` logs
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_secret(self, value: str | None, kind: str) -> None:
        value = (value or "").strip()
        if len(value) >= MIN_SECRET:
            with self._lock:
                self.secrets.setdefault(value, kind)

    def add_prompt(self, text: str) -> None:
        text = text.strip()
        if is_prompt(text):
            with self._lock:
                self.prompts.add(text)

    def add_log(self, log: Log) -> Log:
        """Register ``log``; a name already taken gets a number."""
        with self._lock:
            name, n = log.name, 1
            while log.name in self.logs:
                n += 1
                log.name = f"{name} #{n}"
            self.logs[log.name] = log
        return log

    def append(self, name: str, line: str, source: str = "log") -> None:
        """Add a line to the text log ``name``, made on first use."""
        with self._lock:
            log = self.logs.setdefault(name, Log(name, source=source))
            log.text += line + "\n"

    def scan(self) -> list[Finding]:
        with self._lock:
            logs, secrets, prompts = list(self.logs.values()), dict(self.secrets), set(self.prompts)
        findings: list[Finding] = []
        self.allowed = 0
        for log in logs:
            text = log.read()
            findings += scan_text(
                log.name,
                text,
                secrets,
                prompts,
                allow_prompts=log.allow_prompts,
                prints_admin_key=log.prints_admin_key,
            )
            if log.allow_prompts:  # evidence that the exclusion was needed, and worked
                found = scan_text(log.name, text, {}, prompts)
                self.allowed += sum(f.kind == PROMPT for f in found)
        return findings

    def summary(self) -> str:
        """What was scanned, counted by source and kind."""

        def counted(items: Iterable[str]) -> str:
            kinds = Counter(items).most_common()
            return " (" + ", ".join(f"{n} {what}" for what, n in kinds) + ")" if kinds else ""

        with self._lock:
            logs, secrets = list(self.logs.values()), list(self.secrets.values())
        allowing = sum(log.allow_prompts for log in logs)
        return (
            f"{len(logs)} logs{counted(log.source for log in logs)}; "
            f"{len(secrets)} secrets{counted(secrets)}; {len(self.prompts)} prompts; "
            f"{self.allowed} prompt lines let pass in {allowing} log_prompts logs"
        )


# The registry of this test session: Server and the watchers reach it without a fixture.
SESSION = LogScan()
