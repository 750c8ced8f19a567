"""The real ``billumy`` command line, run as a subprocess against a temporary data dir."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from billumy.modelfile import parse_modelfile
from billumy.settings import DEFAULT_PERSONA_SYSTEM, Settings
from billumy.store.base import SHARED, ModelRecord
from billumy.store.sql import SQLStore
from tests.e2e.server import Server, free_port

BIN = Path(sys.executable).parent / "billumy"
KEY_LINE = re.compile(r"^bk_[A-Za-z0-9_-]{20,}$")


def cli_env(
    data_dir: Path, config: Path | None = None, columns: int | None = None
) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("BILLUMY_") and k not in {"COLUMNS", "LINES", "FORCE_COLOR"}
    }
    env["BILLUMY_DATA_DIR"] = str(data_dir)
    env["BILLUMY_CONFIG"] = str(config or data_dir / "absent.toml")
    env["NO_COLOR"] = "1"
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return env


def billumy(
    data_dir: Path,
    *args: str,
    stdin: str = "",
    config: Path | None = None,
    timeout: float = 120,
    columns: int | None = None,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**cli_env(data_dir, config, columns), **(extra_env or {})},
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


# --- help ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), ["serve", "keys", "models", "chat", "Ollama API"]),
        (("keys",), ["create", "list", "revoke", "limits", "usage", "API keys"]),
        (("keys", "create"), ["--name", "--scope", "--tenant", "--rpm", "--tokens-per-day"]),
        (("keys", "create"), ["--parallel", "0: unlimited", "server defaults"]),
        (("keys", "limits"), ["--rpm", "--tokens-per-day", "--parallel", "--reset", "Key id"]),
        (("keys", "usage"), ["--key", "--days", "default: 30", "total row", "UTC"]),
        (("keys", "list"), ["rpm", "tok", "par", "unlimited", "default"]),
        (("models",), ["list", "show", "prepare"]),
        (("chat",), ["--model", "--host", "--key", "--num-predict", "/exit"]),
    ],
)
def test_help(data_dir: Path, args: tuple[str, ...], expected: list[str]) -> None:
    result = billumy(data_dir, *args, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage: billumy" in result.stdout
    for text in expected:
        assert text in result.stdout


def test_serve_help_has_an_option_per_scalar_setting(data_dir: Path) -> None:
    result = billumy(data_dir, "serve", "--help")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Start the server" in out
    assert "BILLUMY_CONFIG" in out
    for option in ("--port", "--data-dir", "--max-queue", "--max-body-bytes", "--keep-alive"):
        assert option in out
    scalar = (str, int, float, bool, Path)
    for name, field in Settings.model_fields.items():
        if name in ("personas", "deployments", "fallbacks", "tiers", "sources"):
            continue  # tables in billumy.toml
        args = [a for a in getattr(field.annotation, "__args__", ()) if a is not type(None)]
        assert field.annotation in scalar or len(args) == 1, name
        assert "--" + name.replace("_", "-") in out, name
    assert "--no-log-prompts" in out


def test_serve_rejects_an_invalid_setting(data_dir: Path) -> None:
    result = billumy(data_dir, "serve", "--log-level", "loud")
    assert result.returncode == 2
    assert "log_level" in result.stderr


# --- keys ----------------------------------------------------------------------------------------


def test_keys_create_list_revoke(data_dir: Path) -> None:
    created = billumy(
        data_dir, "keys", "create", "--name", "ci", "--scope", "inference", "--tenant", "acme"
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert created.stdout == key + "\n"  # only the key, so $(billumy keys create ...) works
    assert KEY_LINE.match(key)
    key_id = re.search(r"created key ([0-9a-f]{16})", created.stderr)
    assert key_id is not None
    assert "tenant acme" in created.stderr
    assert key not in created.stderr

    listed = billumy(data_dir, "keys", "list")
    assert listed.returncode == 0, listed.stderr
    assert key_id.group(1) in listed.stdout  # the full id, so it can be passed to revoke
    assert " ci " in listed.stdout
    assert "acme" in listed.stdout
    assert "active" in listed.stdout
    assert key not in listed.stdout + listed.stderr
    assert key[8:20] not in listed.stdout + listed.stderr

    revoked = billumy(data_dir, "keys", "revoke", "ci")
    assert revoked.returncode == 0, revoked.stderr
    assert key_id.group(1) in revoked.stderr
    assert "revoked" in billumy(data_dir, "keys", "list").stdout

    # Revoking by id works as well (and is idempotent).
    assert billumy(data_dir, "keys", "revoke", key_id.group(1)).returncode == 0


def test_keys_revoke_unknown_and_ambiguous(data_dir: Path) -> None:
    unknown = billumy(data_dir, "keys", "revoke", "nope")
    assert unknown.returncode != 0
    assert "no key with id or name 'nope'" in unknown.stderr
    for _ in range(2):
        assert billumy(data_dir, "keys", "create", "--name", "twin").returncode == 0
    ambiguous = billumy(data_dir, "keys", "revoke", "twin")
    assert ambiguous.returncode == 1
    assert "several keys are named 'twin'" in ambiguous.stderr


def test_keys_limits(data_dir: Path) -> None:
    created = billumy(data_dir, "keys", "create", "--name", "ci", "--rpm", "2", "--parallel", "0")
    assert created.returncode == 0, created.stderr
    assert billumy(data_dir, "keys", "create", "--name", "plain").returncode == 0
    listed = billumy(data_dir, "keys", "list", columns=200)
    assert listed.returncode == 0, listed.stderr
    ci, plain = (_row(listed.stdout, name) for name in ("ci", "plain"))
    assert "rpm 2" in ci and "tok default" in ci and "par unlimited" in ci
    assert "default" in plain and "rpm" not in plain  # follows every default

    # No option: print the limits, with what each default is.
    shown = billumy(data_dir, "keys", "limits", "ci")
    assert shown.returncode == 0, shown.stderr
    assert "requests/minute 2, tokens/day default (unlimited), parallel unlimited" in shown.stdout
    changed = billumy(data_dir, "keys", "limits", "ci", "--tokens-per-day", "5000")
    assert "requests/minute 2, tokens/day 5000, parallel unlimited" in changed.stdout
    reset = billumy(data_dir, "keys", "limits", "ci", "--reset", "--parallel", "3")
    assert reset.returncode == 0, reset.stderr
    expected = "requests/minute default (600), tokens/day default (unlimited), parallel 3"
    assert expected in reset.stdout
    # The defaults shown are the server's settings.
    env_default = billumy(
        data_dir, "keys", "limits", "ci", extra_env={"BILLUMY_DEFAULT_REQUESTS_PER_MINUTE": "7"}
    )
    assert "requests/minute default (7)" in env_default.stdout

    unknown = billumy(data_dir, "keys", "limits", "nope", "--rpm", "1")
    assert unknown.returncode == 1
    assert "no key with id or name 'nope'" in unknown.stderr
    negative = billumy(data_dir, "keys", "limits", "ci", "--rpm", "-1")
    assert negative.returncode == 2
    assert "--rpm" in negative.stderr
    assert billumy(data_dir, "keys", "create", "--name", "ci").returncode == 0
    ambiguous = billumy(data_dir, "keys", "limits", "ci", "--rpm", "1")
    assert ambiguous.returncode == 1
    assert "several keys are named 'ci'" in ambiguous.stderr


def _row(table: str, name: str) -> str:
    """The lines of the table row whose name column is ``name`` (a row may span lines)."""
    lines = table.splitlines()
    start = next(i for i, line in enumerate(lines) if f"│ {name} " in line)
    end = start + 1
    while end < len(lines) and lines[end].startswith("│ ") and not lines[end].split("│")[1].strip():
        end += 1
    return "\n".join(lines[start:end])


def test_keys_usage(data_dir: Path) -> None:
    from billumy.store.sql import SQLStore

    for name in ("ci", "other"):
        assert billumy(data_dir, "keys", "create", "--name", name).returncode == 0
    empty = billumy(data_dir, "keys", "usage")
    assert empty.returncode == 0, empty.stderr
    assert re.search(r"total\s*│\s*│\s*│\s*0 │\s*0 │\s*0 │", empty.stdout), empty.stdout

    async def seed() -> None:
        store = SQLStore("sqlite+aiosqlite:///" + str(data_dir / "billumy.db"))
        await store.ainit()
        try:
            ids = {k.name: k.id for k in await store.list_keys()}
            today = datetime.now(UTC).date()
            await store.record_usage(ids["ci"], "billumy:latest", 1200, 300, day=today)
            await store.record_usage(ids["ci"], "billumy:latest", 100, 30, day=today)
            await store.record_usage(ids["ci"], "gemma3-270m:latest", 5, 6, day=today)
            await store.record_usage(ids["other"], "billumy:latest", 7, 8, day=today)
            old = today - timedelta(days=40)
            await store.record_usage(ids["ci"], "billumy:latest", 1000, 1000, day=old)
        finally:
            await store.aclose()

    asyncio.run(seed())
    today = datetime.now(UTC).date().isoformat()
    result = billumy(data_dir, "keys", "usage", "--key", "ci", columns=200)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.replace("┃", "│").splitlines()
    rows = [[c.strip() for c in line.strip("│ ").split("│")] for line in lines]
    rows = [r for r in rows if len(r) == 6]
    assert rows[0] == ["day", "key", "model", "requests", "prompt tokens", "completion tokens"]
    assert rows[1:] == [
        [today, "ci", "billumy:latest", "2", "1,300", "330"],
        [today, "ci", "gemma3-270m:latest", "1", "5", "6"],
        ["total", "", "", "3", "1,305", "336"],
    ]
    everyone = billumy(data_dir, "keys", "usage", "--days", "41", columns=200)
    assert everyone.returncode == 0, everyone.stderr
    assert "other" in everyone.stdout
    assert re.search(r"total\s*│\s*│\s*│\s*5 │\s*2,312 │\s*1,344 │", everyone.stdout)

    unknown = billumy(data_dir, "keys", "usage", "--key", "nope")
    assert unknown.returncode == 1
    assert "no key with id or name 'nope'" in unknown.stderr
    assert billumy(data_dir, "keys", "usage", "--days", "0").returncode == 2


def test_keys_create_rejects_an_unknown_scope(data_dir: Path) -> None:
    result = billumy(data_dir, "keys", "create", "--name", "x", "--scope", "root")
    assert result.returncode == 1
    assert "unknown scope" in result.stderr
    assert result.stdout == ""
    negative = billumy(data_dir, "keys", "create", "--name", "x", "--tokens-per-day", "-3")
    assert negative.returncode == 2
    assert negative.stdout == ""
    assert "no key" not in billumy(data_dir, "keys", "list").stdout
    assert " x " not in billumy(data_dir, "keys", "list").stdout


# --- models --------------------------------------------------------------------------------------


def test_models_list(data_dir: Path) -> None:
    result = billumy(data_dir, "models", "list")
    assert result.returncode == 0, result.stderr
    for name in ("billumy:latest", "smollm2-135m:latest", "gemma3-270m:latest"):
        assert name in result.stdout
    assert "persona" in result.stdout


def test_models_show_prints_a_modelfile_that_parses_back(data_dir: Path) -> None:
    result = billumy(data_dir, "models", "show", "billumy")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("FROM smollm2-135m\n")
    assert "\nSYSTEM " in result.stdout
    # The output is a usable Modelfile: not wrapped to the terminal width, nothing rewritten.
    mf = parse_modelfile(result.stdout)
    assert mf.from_ == "smollm2-135m"
    assert mf.system == DEFAULT_PERSONA_SYSTEM
    assert mf.parameters == {"temperature": 0.7, "num_ctx": 2048, "num_predict": 512}


def test_models_show_prints_configured_persona_verbatim(tmp_path: Path, data_dir: Path) -> None:
    system = "Use [bold]emoji[/bold] codes like :rocket: literally. " + "Be precise. " * 12
    config = tmp_path / "billumy.toml"
    config.write_text(
        f'[personas.analyst]\nsystem = "{system}"\nparameters = {{ temperature = 0.2 }}\n',
        encoding="utf-8",
    )
    result = billumy(data_dir, "models", "show", "analyst", config=config)
    assert result.returncode == 0, result.stderr
    mf = parse_modelfile(result.stdout)
    assert mf.system == system
    assert mf.parameters == {"temperature": 0.2}


def test_models_list_and_show_tell_owners_apart(data_dir: Path) -> None:
    async def store_personas() -> None:
        store = SQLStore(f"sqlite+aiosqlite:///{data_dir / 'billumy.db'}")
        await store.ainit()
        try:
            for owner, system in ((SHARED, "Shared."), ("acme", "Acme's.")):
                definition = {"from": "billumy", "base": "smollm2-135m:latest", "system": system}
                await store.put_model(
                    ModelRecord(owner=owner, name="analyst:latest", definition=definition)
                )
        finally:
            await store.aclose()

    data_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(store_personas())
    listed = billumy(data_dir, "models", "list", columns=200)
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines() if "analyst:latest" in line]
    assert len(rows) == 2, listed.stdout
    assert "tenant acme" in rows[1] and "shared" in rows[0]
    for args, system in (((), "Shared."), (("--tenant", "acme"), "Acme's.")):
        shown = billumy(data_dir, "models", "show", "analyst", *args)
        assert shown.returncode == 0, shown.stderr
        assert parse_modelfile(shown.stdout).system == system
    # Another tenant, without one of its own, gets the shared one.
    shown = billumy(data_dir, "models", "show", "analyst", "--tenant", "globex")
    assert parse_modelfile(shown.stdout).system == "Shared."


def test_models_show_unknown(data_dir: Path) -> None:
    result = billumy(data_dir, "models", "show", "nope")
    assert result.returncode != 0
    assert "model 'nope' not found" in result.stderr
    assert result.stdout == ""


# --- first start ---------------------------------------------------------------------------------


def _key_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith("bk_")]


def test_first_start_prints_an_admin_key_once(make_server: type[Server], tmp_path: Path) -> None:
    data = tmp_path / "first"
    first = make_server(data_dir=data, api_key=None).start()
    keys = _key_lines(first.log())
    assert len(keys) == 1, first.log()
    key = keys[0]
    assert KEY_LINE.match(key)

    tags = httpx.get(first.url + "/api/tags", headers={"Authorization": f"Bearer {key}"})
    assert tags.status_code == 200
    assert "billumy:latest" in {m["name"] for m in tags.json()["models"]}
    assert httpx.get(first.url + "/api/tags").status_code == 401
    first.stop()

    second = make_server(data_dir=data, api_key=None).start()
    assert second.log_path != first.log_path
    assert _key_lines(second.log()) == []
    again = httpx.get(second.url + "/api/tags", headers={"Authorization": f"Bearer {key}"})
    assert again.status_code == 200
    second.stop()

    for log in (first.log(), second.log()):
        json_lines = [line for line in log.splitlines() if line.startswith("{")]
        assert json_lines, log  # structured logging is on, so the check below means something
        assert not [line for line in json_lines if key in line or "bk_" in line]


# --- chat ----------------------------------------------------------------------------------------


def test_chat_streams_a_reply(server: Server, data_dir: Path) -> None:
    assert server.api_key is not None
    result = billumy(
        data_dir,
        "chat",
        "--host",
        server.url,
        "--key",
        server.api_key,
        "--model",
        "billumy",
        "--num-predict",
        "8",
        stdin="Olá\n/exit\n",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip()
    assert "error" not in result.stdout


def test_chat_with_a_wrong_key(server: Server, data_dir: Path) -> None:
    result = billumy(
        data_dir,
        "chat",
        "--host",
        server.url,
        "--key",
        "bk_wrong-key-0000000000000000",
        "--num-predict",
        "8",
        stdin="Olá\n",
    )
    assert result.returncode == 1
    assert "401" in result.stdout + result.stderr


def test_chat_with_no_server(data_dir: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = billumy(data_dir, "chat", "--host", url, "--key", "x" * 20, stdin="hi\n")
    assert result.returncode == 1
    assert "cannot reach" in result.stdout + result.stderr
