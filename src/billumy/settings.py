"""Configuration: ``BILLUMY_*`` environment variables and an optional ``billumy.toml``.

Precedence, highest first: explicit arguments (the CLI), environment, the TOML file, defaults.
The TOML file is ``./billumy.toml`` unless ``BILLUMY_CONFIG`` names another one.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import ssl
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from billumy.cache.limits import Limits
from billumy.durations import parse_duration
from billumy.engines.grammar import GrammarLimits
from billumy.errors import BadRequestError

DEFAULT_PERSONA_SYSTEM = (
    "You are Billumy, a data-analysis assistant for businesses. You interpret data, explain what "
    "it means and suggest concrete, actionable next steps. Answer clearly, concisely and "
    "professionally. Always reply in the same language as the user's message: if the user writes "
    "in Portuguese, answer in Brazilian Portuguese; if in English, answer in English. Never invent "
    "numbers that are not in the data you were given."
)


class PersonaConfig(BaseModel):
    """A model defined over a base model: system prompt, parameters, template, few-shot messages."""

    base: str = Field(default="smollm2-135m", description="Base model the persona runs on.")
    system: str | None = Field(default=None, description="System prompt.")
    template: str | None = Field(default=None, description="Ollama (Go) prompt template.")
    parameters: dict[str, Any] = Field(default_factory=dict, description="Default options.")
    messages: list[dict[str, str]] = Field(default_factory=list, description="Few-shot messages.")
    modelfile: str | None = Field(
        default=None, description="Path to an Ollama Modelfile; its fields fill in the rest."
    )


Provider = Literal["ollama", "openai", "embedded"]


class DeploymentConfig(BaseModel):
    """One place that serves a model: the embedded engine or an upstream model server.

    Several deployments may serve the same ``model``; requests are balanced between them.
    Upstream addresses come only from here: no request can name another host.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Unique name, shown in X-Billumy-Deployment, /api/ps, logs.")
    model: str = Field(description="The model name clients ask for.")
    provider: Provider = Field(
        default="ollama",
        description="ollama (Ollama or another Billumy), openai (vLLM, llama-server...), embedded.",
    )
    url: str | None = Field(
        default=None,
        description="Base URL: http://host:11434 for ollama, http://host:8000/v1 for openai.",
    )
    upstream_model: str | None = Field(
        default=None,
        description="Model name at the upstream (embedded: a local model); default: model.",
    )
    api_key: SecretStr | None = Field(default=None, description="Sent as a Bearer token.")
    weight: float = Field(default=1.0, gt=0, description="Share of traffic relative to others.")
    max_concurrency: int = Field(default=16, ge=1, description="Requests in flight at most.")
    max_queue: int = Field(default=64, ge=0, description="Requests waiting beyond that (503).")
    timeout: float = Field(
        default=600.0, gt=0, description="Seconds a whole request may take (504 beyond)."
    )
    first_token_timeout: float = Field(
        default=120.0, gt=0, description="Seconds to wait for the first token (504 beyond)."
    )
    connect_timeout: float = Field(default=5.0, gt=0, description="Seconds to connect.")
    context_length: int = Field(default=8192, ge=64, description="The model's context length.")
    ca_file: Path | None = Field(
        default=None,
        description="PEM file of the CAs that sign an https upstream's certificate (a private "
        "CA); default: the public roots. Certificates are always verified.",
    )

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        try:
            ssl.create_default_context(cafile=str(value))
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"ca_file {str(value)!r} is not a readable PEM file of CAs") from exc
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", value):
            raise ValueError("deployment names are letters, digits, '.', '_' and '-'")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.rstrip("/")
        if not re.match(r"^https?://[^/?#]+(/[^?#]*)?$", value):
            raise ValueError("url must be an http:// or https:// base URL")
        return value

    @model_validator(mode="after")
    def _needs_url(self) -> DeploymentConfig:
        if self.provider != "embedded" and not self.url:
            raise ValueError(f"deployment {self.name!r}: provider {self.provider} needs a url")
        return self


_IDENT = r"[A-Za-z_][A-Za-z0-9_$]{0,62}"


class SourceTableConfig(BaseModel):
    """A table or view a source may read, with the columns it may read and those it masks."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Table or view name, optionally schema-qualified (sales.orders).")
    columns: list[str] | None = Field(
        default=None, description="Only these columns are read; default: every column."
    )
    mask: list[str] = Field(
        default_factory=list, description="Columns never selected, only counted."
    )

    @field_validator("name")
    @classmethod
    def _table_name(cls, value: str) -> str:
        if not re.fullmatch(rf"(?:{_IDENT}\.)?{_IDENT}", value):
            raise ValueError(
                f"table {value!r}: name it as table or schema.table (letters, digits, _)"
            )
        return value

    @model_validator(mode="after")
    def _mask_in_scope(self) -> SourceTableConfig:
        if self.columns is not None and not self.columns:
            raise ValueError(f"table {self.name!r}: columns, when given, lists at least one")
        outside = [m for m in self.mask if self.columns is not None and m not in self.columns]
        if outside:
            raise ValueError(f"table {self.name!r}: masked columns {outside} are not in columns")
        return self


class SourceJoinConfig(BaseModel):
    """A many-to-one join declared between two allow-listed tables (a Django ``ForeignKey``):
    the ``from`` table's questions can name the ``to`` table's columns."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str = Field(
        alias="from",
        description="table.column holding the key, e.g. vendas_pedido.loja_id.",
    )
    to: str = Field(description="table.column it points at, unique there, e.g. vendas_loja.id.")
    as_: str | None = Field(
        default=None,
        alias="as",
        description="What the joined row is called (default: the from column without _id); "
        "its name-like column (nome, name, title...) is read under this name.",
    )
    columns: list[str] | None = Field(
        default=None,
        description="The to table's columns read (default: its allowed, unmasked ones).",
    )

    @field_validator("from_", "to")
    @classmethod
    def _qualified(cls, value: str) -> str:
        if not re.fullmatch(rf"(?:{_IDENT}\.)?{_IDENT}\.{_IDENT}", value):
            raise ValueError(f"join end {value!r}: name it as table.column")
        return value

    @field_validator("as_")
    @classmethod
    def _alias(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(_IDENT, value):
            raise ValueError(f"join name {value!r}: letters, digits and _")
        return value

    def ends(self) -> tuple[tuple[str, str], tuple[str, str]]:
        """((from table, from column), (to table, to column))."""
        table, _, column = self.from_.rpartition(".")
        target, _, key = self.to.rpartition(".")
        return (table, column), (target, key)

    def name(self) -> str:
        column = self.ends()[0][1]
        if self.as_:
            return self.as_
        stem = re.sub(r"_id$", "", column, flags=re.IGNORECASE)
        return stem if stem != column else f"{column}_ref"


class SourceConfig(BaseModel):
    """A database a tenant's questions may read (read-only, pushed down): PostgreSQL,
    MySQL/MariaDB or SQLite.

    The URL comes from here or from the environment variable named by ``url_env``, never from
    a request; it is never shown in responses, errors or logs."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description='Name clients ask by: {"source": "shop"}.')
    tenant: str = Field(default="default", description="The only tenant whose keys may read it.")
    url: SecretStr | None = Field(
        default=None,
        description="postgresql://..., mysql://user:pw@host/db (MySQL or MariaDB, through "
        "PyMySQL) or sqlite:///path (read-only).",
    )
    url_env: str | None = Field(default=None, description="Environment variable with the URL.")
    tables: list[SourceTableConfig] = Field(description="Tables or views it may read.")
    joins: list[SourceJoinConfig] = Field(
        default_factory=list,
        description="Many-to-one joins between listed tables (foreign keys), [[sources.joins]].",
    )
    statement_timeout: float = Field(
        default=30.0, gt=0, description="Seconds one query may run in the source."
    )
    sample_rows: int = Field(
        default=20_000, ge=100, le=1_000_000, description="Rows sampled to profile a table."
    )
    connect_timeout: float = Field(default=5.0, gt=0, description="Seconds to connect.")
    reuse_seconds: float = Field(
        default=300.0,
        ge=0,
        description="Seconds a table's sample and per-question aggregate may be reused while "
        "the database shows no write to the tables they read; 0: read them for every question.",
    )

    @field_validator("name")
    @classmethod
    def _source_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", value):
            raise ValueError("source names are letters, digits, '.', '_' and '-'")
        return value

    @model_validator(mode="after")
    def _one_url(self) -> SourceConfig:
        if (self.url is None) == (self.url_env is None):
            raise ValueError(f"source {self.name!r}: set exactly one of url and url_env")
        if self.url_env is not None and not os.environ.get(self.url_env):
            raise ValueError(
                f"source {self.name!r}: environment variable {self.url_env} is not set"
            )
        scheme = self.resolved_url().split(":", 1)[0].split("+", 1)[0]
        if scheme not in ("postgresql", "postgres", "mysql", "mariadb", "sqlite"):
            raise ValueError(
                f"source {self.name!r}: only postgresql://, mysql:// (MySQL or MariaDB) and "
                "sqlite:/// URLs"
            )
        if not self.tables:
            raise ValueError(f"source {self.name!r}: list at least one table")
        names = [t.name.casefold() for t in self.tables]
        if len(set(names)) != len(names):
            raise ValueError(f"source {self.name!r}: a table is listed twice")
        for join in self.joins:
            (table, _), (target, _) = join.ends()
            for end in (table, target):
                if end.casefold() not in names:
                    raise ValueError(
                        f"source {self.name!r}: join {join.from_} -> {join.to}: table {end!r} "
                        "is not in its tables"
                    )
            if table.casefold() == target.casefold():
                raise ValueError(f"source {self.name!r}: a table cannot join itself")
        return self

    def resolved_url(self) -> str:
        """The URL (a secret: never log or show it)."""
        if self.url is not None:
            return self.url.get_secret_value()
        return os.environ.get(self.url_env or "", "")


class TierConfig(BaseModel):
    """Maestro: a model name that routes each question to a tier's model by its difficulty."""

    model_config = ConfigDict(extra="forbid")

    simple: str = Field(description="Model for greetings and short factual questions.")
    medium: str = Field(description="Model for ordinary questions.")
    deep: str = Field(description="Model for analysis, comparisons and long reasoning.")
    classifier: str | None = Field(
        default="smollm2-135m",
        description="Model that classifies questions (JSON-schema output); none: rules only.",
    )
    classifier_timeout: float = Field(
        default=3.0, gt=0, description="Seconds before the rule-based fallback decides."
    )
    min_confidence: float = Field(
        default=0.6, ge=0, le=1, description="Below this the rules decide instead."
    )


def default_personas() -> dict[str, PersonaConfig]:
    return {
        "billumy": PersonaConfig(
            base="smollm2-135m",
            system=DEFAULT_PERSONA_SYSTEM,
            # num_predict: the 135M model at temperature 0.7 may never write an end token,
            # and the original curl sets no limit: without one a greeting filled the whole
            # context (1,938 tokens, 20-26 s). A request's own num_predict still wins.
            parameters={"temperature": 0.7, "num_ctx": 2048, "num_predict": 512},
        )
    }


class Settings(BaseSettings):
    """Every setting Billumy reads. Each field is also a ``billumy serve`` option."""

    model_config = SettingsConfigDict(
        env_prefix="BILLUMY_",
        env_nested_delimiter="__",
        extra="ignore",
        validate_default=True,
    )

    host: str = Field(default="127.0.0.1", description="Address to bind.")
    port: int = Field(default=8011, ge=0, le=65535, description="Port to listen on.")
    # NoDecode: the environment gives "10.0.0.1,172.16.0.0/12", not JSON (see _proxy_list).
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default=[],  # pydantic copies it; `serve --help` shows it (no default_factory there)
        description=(
            "IPs and CIDRs of proxies whose X-Forwarded-For and X-Forwarded-Proto are believed "
            "(comma-separated); none: the direct peer is the client."
        ),
    )
    data_dir: Path = Field(
        default=Path("data"), description="Directory for the database and model cache."
    )
    database_url: str | None = Field(
        default=None,
        description=(
            "sqlite:///path, postgresql://user@host/db or mongodb://host/db; "
            "default: SQLite in data_dir."
        ),
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="Admin API key to install at start-up (otherwise one is generated once).",
    )
    default_model: str = Field(
        default="billumy", description="Model used when a request names none."
    )
    personas: dict[str, PersonaConfig] = Field(
        default_factory=default_personas, description="Personas served besides the base models."
    )
    num_threads: int = Field(
        default=0, ge=0, description="llama.cpp threads per generation; 0 means all CPU cores."
    )
    num_parallel: int = Field(
        default=4,
        ge=1,
        le=64,
        description=(
            "Generations run at once per model: sequences of one context with engine_batching "
            "(default 4), one context each without it (default 1)."
        ),
    )
    engine_batching: bool = Field(
        default=True,
        description=(
            "Continuous batching: the engine runs a model's num_parallel generations as "
            "sequences of one llama.cpp context (one copy of the KV memory, one scheduler "
            "thread) rather than one context each."
        ),
    )
    max_queue: int = Field(
        default=512, ge=0, description="Requests that may wait for the engine before 503."
    )
    engine_timeout: float = Field(
        default=600.0,
        gt=0,
        description=(
            "Seconds an embedded generation may take, waiting for the engine included (504 "
            "beyond); an embedded deployment's own timeout applies to its requests."
        ),
    )
    engine_socket: Path | None = Field(
        default=None,
        description=(
            "Unix socket of an engine process started elsewhere; `serve --workers N` sets it "
            "so that all workers share one. Unset: each server starts its own."
        ),
    )
    engine_nice: int = Field(
        default=0,
        ge=0,
        le=19,
        description=(
            "Niceness added to the engine process: under contention for the CPU the API's "
            "event loop, which answers every tenant, runs before the model's threads; 0: none."
        ),
    )
    engine_max_crashes: int = Field(
        default=5,
        ge=1,
        description=(
            "Crashes of the engine process within a minute after which it is marked failed "
            "instead of restarted again."
        ),
    )
    default_num_ctx: int = Field(default=2048, ge=64, description="Context length when unset.")
    max_num_ctx: int = Field(
        default=8192, ge=64, description="Largest num_ctx a request may ask for."
    )
    max_num_predict: int = Field(
        default=4096, ge=1, description="Largest num_predict; -1 (unbounded) is capped to this."
    )
    max_body_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, description="Largest request body, in bytes (413 above)."
    )
    max_message_chars: int = Field(
        default=100_000, ge=1, description="Longest chat message, in characters (413 above)."
    )
    max_embed_inputs: int = Field(default=256, ge=1, description="Most inputs in one embed call.")
    max_schema_bytes: int = Field(
        default=64 * 1024, ge=256, description="Largest format (JSON schema), in bytes (400)."
    )
    max_schema_depth: int = Field(
        default=32,
        ge=4,
        description="Deepest nesting of a format schema's JSON, and of groups in its patterns.",
    )
    max_schema_repeat: int = Field(
        default=4096,
        ge=1,
        description=(
            "Largest repetition count in a format schema: minItems, maxItems, minLength, "
            "maxLength and {m,n} in patterns."
        ),
    )
    max_grammar_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        description="Largest grammar made from a format schema, in bytes (400).",
    )
    keep_alive: str = Field(
        default="5m", description="How long a model stays loaded after use (Ollama duration)."
    )
    inference_keep_alive_min: str = Field(
        default="1m",
        description=(
            "Shortest keep_alive an inference (non-admin) key's request applies (a duration "
            "above 0): its keep_alive 0 (unload) is raised to this, so only admins unload."
        ),
    )
    inference_keep_alive_max: str = Field(
        default="30m",
        description=(
            "Longest keep_alive an inference (non-admin) key's request applies (a finite "
            "duration): longer values and negative ones (pin forever) are lowered to this."
        ),
    )
    global_admin_tenant: str = Field(
        default="default",
        min_length=1,
        description=(
            "Tenant whose admin keys are global admins: they publish shared personas "
            "(shared: true on /api/create and /api/copy) and replace or delete shared ones."
        ),
    )
    redis_url: SecretStr | None = Field(
        default=None,
        description="Redis URL for the shared cache and limits; unset: in-process state.",
    )
    cache_ttl: float = Field(
        default=3600.0, ge=0, description="Seconds a cached answer lives; 0 turns the cache off."
    )
    cache_sampled: bool = Field(
        default=False, description="Also cache answers sampled without a fixed seed."
    )
    default_requests_per_minute: int = Field(
        default=600, ge=0, description="Requests per minute per key, unless the key says; 0: none."
    )
    rate_burst: int = Field(
        default=0,
        ge=0,
        description=(
            "Requests a key may send at once before its per-minute rate paces it (at most its "
            "limit); 0: a tenth of its limit, at least 10."
        ),
    )
    default_tokens_per_day: int = Field(
        default=0, ge=0, description="Tokens per UTC day per key, unless the key says; 0: none."
    )
    default_parallel: int = Field(
        default=32, ge=0, description="Parallel requests per key, unless the key says; 0: none."
    )
    key_cache_ttl: float = Field(
        default=2.0,
        ge=0,
        description="Seconds a verified key is remembered; revocations apply within this.",
    )
    catalog_refresh_s: float = Field(
        default=2.0,
        ge=0,
        description=(
            "Seconds a process serves its copy of the created personas before reading them "
            "again: a create, copy or delete made through another process applies within "
            "this; 0: read them for every request."
        ),
    )
    key_negative_cache_ttl: float = Field(
        default=10.0,
        ge=0,
        description=(
            "Seconds an unknown key is remembered as unknown (shared through Redis when set), "
            "so a wrong key costs no store lookup; 0: look every one up."
        ),
    )
    quota_on_outage: str = Field(
        default="closed",
        description="While Redis is unreachable, token quotas fail 'closed' (503) or 'open'.",
    )
    deployments: list[DeploymentConfig] = Field(
        default_factory=list,
        description="Where models are served: embedded or upstream (see billumy.toml).",
    )
    sources: list[SourceConfig] = Field(
        default_factory=list,
        description="Databases insights may read in place, read-only (see billumy.toml).",
    )
    fallbacks: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Models to try, in order, when every deployment of a model fails.",
    )
    tiers: dict[str, TierConfig] = Field(
        default_factory=dict, description="Model names that route by question difficulty."
    )
    max_dataset_bytes: int = Field(
        default=50 * 1024 * 1024, ge=1024, description="Largest dataset upload, in bytes (413)."
    )
    max_dataset_rows: int = Field(
        default=1_000_000, ge=1, description="Most rows in a dataset or inline data (413)."
    )
    max_dataset_columns: int = Field(
        default=100, ge=1, description="Most columns in a dataset or inline data (413)."
    )
    max_dataset_decoded_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024,
        description="Most bytes a dataset may take in memory once decompressed and typed (413).",
    )
    insights_memory_limit: int = Field(
        default=512 * 1024 * 1024,
        ge=16 * 1024 * 1024,
        description="DuckDB memory limit per insights request, in bytes (413 above).",
    )
    insights_threads: int = Field(default=2, ge=1, description="DuckDB threads per request.")
    insights_temp_dir: Path | None = Field(
        default=None,
        description="Where DuckDB spills past its memory limit; default: <data dir>/tmp/duckdb.",
    )
    insights_max_temp_bytes: int = Field(
        default=2 * 1024 * 1024 * 1024,
        ge=0,
        description="Most bytes one insights request may spill to the temp dir (413 above).",
    )
    insights_query_timeout: float = Field(
        default=30.0,
        ge=0,
        description="Seconds one DuckDB query of an insights request may run (503 after); 0: none.",
    )
    insights_plan_timeout: float = Field(
        default=10.0,
        ge=0,
        description=(
            "Seconds the model may take to plan a question the rules cannot read; past them "
            "the answer goes on without a plan (the data's notable facts); 0: no limit."
        ),
    )
    insights_max_result_rows: int = Field(
        default=10_000, ge=100, description="Most rows one insights query may return (413)."
    )
    insights_max_concurrent: int = Field(
        default=2,
        ge=1,
        description="Insights requests doing DuckDB work at once per process; more get 503.",
    )
    max_dataset_storage_bytes: int = Field(
        default=1024 * 1024 * 1024, ge=1024, description="Stored datasets per tenant, in bytes."
    )
    dataset_cache_max_bytes: int = Field(
        default=1024 * 1024 * 1024,
        ge=0,
        description=(
            "Bytes of dataset Parquet files this host keeps in <data dir>/cache/datasets; past "
            "it the least recently used are removed (fetched again from the store when asked), "
            "except those used in the last minute."
        ),
    )
    insights_model: str = Field(
        default="billumy", description="Model that plans and narrates insights by default."
    )
    insights_narrative: str = Field(
        default="auto",
        description=(
            "Whether insights get the model's narrative when a request does not say: auto (on "
            "when the insights model is served upstream, off for the embedded one), true, false."
        ),
    )
    health_interval: float = Field(
        default=10.0, gt=0, description="Seconds between upstream health checks."
    )
    breaker_failures: int = Field(
        default=3, ge=1, description="Consecutive failures that open a deployment's circuit."
    )
    breaker_cooldown: float = Field(
        default=10.0, gt=0, description="Seconds an open circuit waits before a probe."
    )
    route_retries: int = Field(
        default=2, ge=0, description="Other deployments tried before the first byte is sent."
    )
    shutdown_grace: float = Field(
        default=20.0,
        ge=0,
        description="Seconds running streams may go on after SIGTERM; then they end in-band.",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description=(
            "Server processes sharing the port; more than 1 needs redis_url (limits, cache "
            "and conversation windows must be shared). Each loads its own models."
        ),
    )
    log_level: str = Field(default="info", description="Logging level.")
    log_prompts: bool = Field(
        default=False, description="Log prompts and responses (off: they never reach the logs)."
    )
    public_docs: bool = Field(
        default=False,
        description=(
            "Serve the API reference at /docs to anyone (off: the page asks for a key before "
            "it shows the OpenAPI document)."
        ),
    )
    create_admin_key: bool = Field(
        default=True, description="On first start with no key, create an admin key and print it."
    )

    @field_validator("api_key", "redis_url", "database_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # ``BILLUMY_API_KEY=`` in a .env file means "not set", not "the empty key".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_list(cls, value: Any) -> Any:
        # The environment gives a string: comma-separated, or a JSON list like other lists.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    return json.loads(text)
                except ValueError:
                    raise ValueError(f"{text!r} is not a JSON list") from None
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        proxies = []
        for entry in value:
            entry = entry.strip()
            try:
                proxy = ipaddress.ip_network(entry) if "/" in entry else ipaddress.ip_address(entry)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or a CIDR network "
                    "with no host bits set (e.g. 10.0.0.0/8)"
                ) from None
            proxies.append(str(proxy))
        return proxies

    @field_validator("quota_on_outage")
    @classmethod
    def _outage(cls, value: str) -> str:
        if value not in ("open", "closed"):
            raise ValueError("quota_on_outage must be open or closed")
        return value

    @field_validator("insights_narrative", mode="before")
    @classmethod
    def _narrative(cls, value: Any) -> str:
        # billumy.toml gives a bool (insights_narrative = true), the environment a string.
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return "true"
        if text in ("false", "0", "no", "off"):
            return "false"
        if text != "auto":
            raise ValueError("insights_narrative must be auto, true or false")
        return text

    @model_validator(mode="after")
    def _one_context_each_unless_batched(self) -> Settings:
        # Unbatched, each parallel generation is a context with all the threads: four would
        # share the cores four ways. One, unless num_parallel is set.
        if not self.engine_batching and "num_parallel" not in self.model_fields_set:
            self.num_parallel = 1
        return self

    @model_validator(mode="after")
    def _unique_sources(self) -> Settings:
        seen: set[tuple[str, str]] = set()
        for source in self.sources:
            key = (source.tenant, source.name.casefold())
            if key in seen:
                raise ValueError(f"source {source.name!r} is defined twice for one tenant")
            seen.add(key)
        return self

    @model_validator(mode="after")
    def _keep_alive_bounds(self) -> Settings:
        self.inference_keep_alive_bounds()  # raises on a bad duration or order
        return self

    def inference_keep_alive_bounds(self) -> tuple[float, float]:
        """The (min, max) seconds an inference key's keep_alive is clamped into."""
        try:
            low = parse_duration(self.inference_keep_alive_min)
            high = parse_duration(self.inference_keep_alive_max)
        except BadRequestError as exc:
            raise ValueError(str(exc)) from None
        if low is None or not 0 < low < math.inf:
            raise ValueError("inference_keep_alive_min must be a duration above 0, not forever")
        if high is None or not low <= high < math.inf:
            raise ValueError(
                "inference_keep_alive_max must be a finite duration, at least "
                "inference_keep_alive_min"
            )
        return low, high

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        value = value.lower()
        if value not in {"debug", "info", "warning", "error", "critical"}:
            raise ValueError("log_level must be debug, info, warning, error or critical")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("BILLUMY_CONFIG", "billumy.toml"))
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_path),
        )

    @property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy async URL of the database."""
        url = self.database_url or f"sqlite:///{self.data_dir / 'billumy.db'}"
        if url.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
        if url.startswith(("postgresql://", "postgres://")):
            return "postgresql+asyncpg://" + url.split("://", 1)[1]
        return url

    def default_limits(self) -> Limits:
        """Limits of keys that set none of their own (0 in settings means unlimited)."""
        return Limits(
            requests_per_minute=self.default_requests_per_minute or None,
            tokens_per_day=self.default_tokens_per_day or None,
            parallel=self.default_parallel or None,
        )

    def grammar_limits(self) -> GrammarLimits:
        """Bounds on a request's format schema and the grammar made from it."""
        return GrammarLimits(
            max_schema_bytes=self.max_schema_bytes,
            max_schema_depth=self.max_schema_depth,
            max_schema_repeat=self.max_schema_repeat,
            max_grammar_bytes=self.max_grammar_bytes,
        )

    @property
    def threads(self) -> int:
        """Threads given to llama.cpp."""
        return self.num_threads or os.cpu_count() or 1
