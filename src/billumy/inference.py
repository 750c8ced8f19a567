"""The inference service: from an Ollama-style request to engine calls, limits enforced.

Routers parse requests into :mod:`billumy.schemas` models and hand them here; this module
decides (model, persona, options, limits) and knows nothing of HTTP.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from billumy.auth import Principal
from billumy.cache.limits import FairUse
from billumy.cache.responses import (
    CachePolicy,
    CacheStatus,
    ResponseCache,
    cache_key,
    deterministic,
    generation_key,
)
from billumy.catalog import ROLES, Catalog, ModelEntry, normalize_name
from billumy.durations import parse_duration
from billumy.engines.base import Chunk, Embedding, Embeddings, Generation, Sampling, closing
from billumy.engines.grammar import format_grammar
from billumy.engines.maestro import CLASSIFIER_SYSTEM, SCHEMA, Maestro
from billumy.engines.remote import EngineClient
from billumy.engines.router import Route, Router
from billumy.errors import BadRequestError
from billumy.metrics import Metrics
from billumy.modelfile import coerce_parameters
from billumy.schemas.ollama import ChatRequest, EmbedRequest, GenerateRequest, Message
from billumy.settings import Settings
from billumy.usage import RequestTokens

log = logging.getLogger(__name__)

# Unknown option names written in the one warning about them.
_LOGGED_OPTIONS = 5
# Ollama options that tune the runtime rather than sampling: accepted and ignored here.
_RUNTIME_OPTIONS = frozenset(
    {
        "numa",
        "num_batch",
        "num_gpu",
        "main_gpu",
        "low_vram",
        "f16_kv",
        "vocab_only",
        "use_mmap",
        "use_mlock",
        "num_thread",
        "logits_all",
        "embedding_only",
        "rope_frequency_base",
        "rope_frequency_scale",
        "num_keep",
        "penalize_newline",
        "tfs_z",
    }
)
_SAMPLING_FIELDS = frozenset(Sampling.__dataclass_fields__)
_MAX_TOKEN_ID = 2**31  # llama.cpp's token ids are 32-bit

UsageRecorder = Callable[[Principal, str, int, int], Awaitable[None]]


@dataclass
class Prepared:
    """A request resolved against the catalog: what the engine needs, plus the name to report."""

    entry: ModelEntry
    generation: Generation
    tier: str | None = None  # the maestro tier chosen for a tiered model name
    route: Route = field(default_factory=Route)  # where it went (filled in by the router)
    keep_alive_clamped: bool = False  # the caller's keep_alive was out of its key's bounds

    def headers(self) -> dict[str, str]:
        """X-Billumy-Tier, X-Billumy-Deployment (as far as they are known) and, when the
        caller's keep_alive was clamped, X-Billumy-Keep-Alive: the seconds applied."""
        out = self.route.headers()
        if self.tier is not None:
            out["X-Billumy-Tier"] = self.tier
        if self.keep_alive_clamped and self.generation.keep_alive_s is not None:
            out["X-Billumy-Keep-Alive"] = f"{self.generation.keep_alive_s:g}"
        return out


class InferenceService:
    def __init__(
        self,
        *,
        settings: Settings,
        catalog: Catalog,
        engine: EngineClient,
        router: Router,
        cache: ResponseCache,
        fair_use: FairUse,
        usage: UsageRecorder | None = None,
        maestro: Maestro | None = None,
        metrics: Metrics | None = None,
        tokens: RequestTokens | None = None,
    ) -> None:
        self.settings = settings
        # The per-request token counts of the access log (none: not counted).
        self.tokens = tokens or RequestTokens()
        self.catalog = catalog
        self.engine = engine
        self.router = router
        self.maestro = maestro
        self.metrics = metrics
        self.cache = cache
        self.fair_use = fair_use
        self.usage = usage
        self.grammar_limits = settings.grammar_limits()
        self._preparing = asyncio.Lock()

    async def model(self, name: str, *, tenant: str | None) -> ModelEntry:
        """The catalog entry as ``tenant`` sees it (None: the server itself), its base model
        prepared (assembled once, off the event loop)."""
        entry = await self.catalog.get(name, tenant=tenant)
        if not entry.base.ready():
            async with self._preparing:
                if not entry.base.ready():
                    log.info("preparing model", extra={"model": entry.base.name})
                    await asyncio.to_thread(entry.base.prepare)
        return entry

    def _tiered(self, name: str) -> str | None:
        """The normalised name when ``name`` is a tiered (maestro) model name."""
        if self.maestro is None or not name:
            return None
        key = normalize_name(name)
        return key if self.maestro.routes(key) else None

    async def resolve(
        self, name: str, question: str, *, tenant: str | None
    ) -> tuple[ModelEntry, str | None]:
        """The entry serving ``name`` for ``question`` as ``tenant`` sees the catalog, and the
        maestro tier when ``name`` is a tiered model."""
        tiered = self._tiered(name)
        if tiered is not None and self.maestro is not None:
            decision = await self.maestro.choose(tiered, question)
            return await self.model(decision.model, tenant=tenant), decision.tier
        return await self.model(name, tenant=tenant), None

    async def upstream(self, name: str, question: str = "", *, tenant: str | None) -> bool:
        """Whether model ``name`` (for ``question``, when it is a tiered name) is served by a
        model server over HTTP (Ollama, OpenAI, vLLM...) rather than by the embedded engine.
        Nothing is loaded or assembled to tell."""
        tiered = self._tiered(name)
        if tiered is not None and self.maestro is not None:
            name = (await self.maestro.choose(tiered, question)).model
        entry = await self.catalog.get(name, tenant=tenant)
        if entry.base.remote:
            return True
        deployments = self.router.deployments.get(entry.route or "", [])
        return any(d.backend.remote for d in deployments)

    async def check_model(self, name: str, *, tenant: str | None) -> None:
        """404 unless ``name`` is a model (or a tiered model name) served here that
        ``tenant`` sees."""
        if self._tiered(name) is None:
            await self.catalog.get(name, tenant=tenant)

    async def classify(self, model: str, question: str) -> str:
        """The classifier model's raw JSON answer for ``question`` (maestro tiers)."""
        entry = await self.model(model, tenant=None)  # the configured classifier
        generation = Generation(
            model_path=entry.base.path(),
            model_name=entry.name,
            system=CLASSIFIER_SYSTEM,
            messages=[{"role": "user", "content": question[:2000]}],
            num_ctx=2048,
            num_predict=48,
            sampling=Sampling(temperature=0.0, seed=0),
            format=SCHEMA,
        )
        return "".join([c.text async for c in self.router.generate(entry, generation)])

    # --- options -------------------------------------------------------------------------------

    def options(
        self, entry: ModelEntry, request_options: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """Persona parameters overridden by request options, typed and validated."""
        raw = dict(request_options or {})
        for name in [k for k in raw if k in _RUNTIME_OPTIONS]:
            raw.pop(name)
        unknown = [k for k in raw if k not in _SAMPLING_FIELDS | {"num_ctx", "num_predict"}]
        if unknown:
            # One line per request however many there are: a body with 20,000 of them must
            # not write 20,000 lines. A few names, cut short, and the count.
            named = ", ".join(repr(str(name)[:40]) for name in unknown[:_LOGGED_OPTIONS])
            rest = len(unknown) - _LOGGED_OPTIONS
            more = f" and {rest} more" if rest > 0 else ""
            log.warning(
                "ignoring %d unknown option(s): %s%s",
                len(unknown),
                named,
                more,
                extra={"unknown_options": len(unknown)},
            )
            for name in unknown:
                raw.pop(name)
        if "stop" in raw and raw["stop"] is None:
            raw.pop("stop")
        # A persona's own num_predict or num_ctx over this server's limits is brought down to
        # them: only a request asking for more is refused (an operator lowering a limit must
        # not make every request to the default persona a 400).
        persona = dict(entry.parameters)
        for name, most in (
            ("num_predict", self.settings.max_num_predict),
            ("num_ctx", self.settings.max_num_ctx),
        ):
            value = persona.get(name)
            if isinstance(value, int | float) and value > most:
                persona[name] = most
        merged = {**persona, **coerce_parameters(raw)}
        return {k: v for k, v in merged.items() if k not in _RUNTIME_OPTIONS}

    def limits(self, opts: dict[str, Any]) -> tuple[int, int]:
        s = self.settings
        num_ctx = int(opts.get("num_ctx") or s.default_num_ctx)
        if num_ctx > s.max_num_ctx:
            raise BadRequestError(
                f"num_ctx {num_ctx} exceeds this server's limit of {s.max_num_ctx}"
            )
        num_ctx = max(num_ctx, 64)
        num_predict = int(opts.get("num_predict", -1))
        if num_predict < 0:
            num_predict = s.max_num_predict
        elif num_predict > s.max_num_predict:
            raise BadRequestError(
                f"num_predict {num_predict} exceeds this server's limit of {s.max_num_predict}"
            )
        return num_ctx, num_predict

    def _sampling(self, opts: dict[str, Any]) -> Sampling:
        values = {k: v for k, v in opts.items() if k in _SAMPLING_FIELDS}
        stop = values.pop("stop", [])
        sampling = Sampling(**values)
        sampling.stop = [stop] if isinstance(stop, str) else list(stop)
        for name in ("temperature", "top_p", "min_p", "typical_p", "repeat_penalty"):
            value = getattr(sampling, name)
            if not math.isfinite(value) or value < 0:
                raise BadRequestError(f"option {name} must be a non-negative number")
        return sampling

    def _grammar(self, fmt: str | dict[str, Any] | None) -> str | None:
        """The grammar of ``format``, within this server's limits (400 otherwise): checked for
        every deployment, made use of by the embedded engine."""
        return format_grammar(fmt or None, self.grammar_limits)

    def _context(self, context: list[int] | None, num_ctx: int) -> list[int]:
        """``context`` token ids, range-checked (the engine checks them against the model's
        vocabulary)."""
        tokens = list(context or [])
        if len(tokens) >= num_ctx:
            raise BadRequestError(
                f"context is {len(tokens)} tokens, which does not fit the context length "
                f"num_ctx={num_ctx}"
            )
        bad = next((t for t in tokens if not 0 <= t < _MAX_TOKEN_ID), None)
        if bad is not None:
            raise BadRequestError(f"context holds {bad}, which is not a token id")
        return tokens

    def keep_alive(
        self, value: str | float | None, caller: Principal | None
    ) -> tuple[float | None, bool]:
        """The keep_alive seconds to apply for ``caller`` (None: the engine default; -1:
        forever) and whether it was clamped. The engine is shared by every tenant, so only
        an admin key unloads (0) or pins (negative, or past a century) models; any other
        caller (None included) gets its value clamped into the admin-set bounds."""
        seconds = parse_duration(value)
        clamped = False
        if seconds is not None and not _is_admin(caller):
            bounded = bounded_keep_alive(seconds, self.settings.inference_keep_alive_bounds())
            clamped = bounded != seconds
            if clamped:
                log.info(
                    "keep_alive clamped",
                    extra={
                        "key_id": caller.key_id if caller else None,
                        "keep_alive": seconds,
                        "applied": bounded,
                    },
                )
            seconds = bounded
        if seconds is None:
            return None, False
        return (-1.0 if math.isinf(seconds) else seconds), clamped

    # --- generate / chat -----------------------------------------------------------------------

    async def prepare_generate(self, req: GenerateRequest, caller: Principal) -> Prepared:
        entry, tier = await self.resolve(req.model, req.prompt or "", tenant=caller.tenant)
        if req.suffix:
            raise BadRequestError(f"model '{req.model}' does not support insert (suffix)")
        if req.images:
            raise BadRequestError(f"model '{req.model}' is text-only and does not support images")
        if req.think:
            raise BadRequestError(f"model '{req.model}' does not support thinking")
        opts = self.options(entry, req.options)
        num_ctx, num_predict = self.limits(opts)
        keep_alive_s, clamped = self.keep_alive(req.keep_alive, caller)
        generation = Generation(
            model_path=entry.base.path(),
            model_name=entry.name,
            prompt=req.prompt or "",
            system=req.system if req.system is not None else entry.system,
            template=req.template or entry.template,
            raw=req.raw,
            context=self._context(req.context, num_ctx),
            messages=None
            if req.raw
            else [*entry.messages, {"role": "user", "content": req.prompt or ""}],
            num_ctx=num_ctx,
            num_predict=num_predict,
            sampling=self._sampling(opts),
            format=req.format or None,
            grammar=self._grammar(req.format),
            keep_alive_s=keep_alive_s,
            keep_alive_extends=not _is_admin(caller),
            mode="generate",
            stream=req.stream,
        )
        self._log_prompt(entry, req.prompt or "")
        return Prepared(entry=entry, generation=generation, tier=tier, keep_alive_clamped=clamped)

    async def prepare_chat(self, req: ChatRequest, caller: Principal) -> Prepared:
        if req.tools:
            raise BadRequestError(f"model '{req.model}' does not support tools")
        if req.think:
            raise BadRequestError(f"model '{req.model}' does not support thinking")
        messages = [self._message(req.model, m) for m in req.messages or []]
        question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        entry, tier = await self.resolve(req.model, question, tenant=caller.tenant)
        return self.prepare_messages(
            entry,
            messages,
            options=req.options,
            format=req.format,
            keep_alive=req.keep_alive,
            caller=caller,
            tier=tier,
            stream=req.stream,
        )

    def prepare_messages(
        self,
        entry: ModelEntry,
        messages: list[dict[str, Any]],
        *,
        options: Mapping[str, Any] | None = None,
        format: str | dict[str, Any] | None = None,
        keep_alive: str | float | None = None,
        caller: Principal | None = None,
        tier: str | None = None,
        stream: bool = True,
    ) -> Prepared:
        """A chat generation over validated messages; the oldest turns give way to fit.
        ``keep_alive`` applies as :meth:`keep_alive` allows ``caller``; ``tier``: the maestro
        tier that chose ``entry``; ``stream``: whether the client reads the answer as it
        comes."""
        opts = self.options(entry, options)
        num_ctx, num_predict = self.limits(opts)
        keep_alive_s, clamped = self.keep_alive(keep_alive, caller)
        generation = Generation(
            model_path=entry.base.path(),
            model_name=entry.name,
            system=entry.system,
            template=entry.template,
            messages=[*entry.messages, *messages],
            keep_messages=len(entry.messages),
            truncate=True,
            num_ctx=num_ctx,
            num_predict=num_predict,
            sampling=self._sampling(opts),
            format=format or None,
            grammar=self._grammar(format),
            keep_alive_s=keep_alive_s,
            keep_alive_extends=not _is_admin(caller),
            stream=stream,
        )
        self._log_prompt(entry, messages[-1]["content"] if messages else "")
        return Prepared(entry=entry, generation=generation, tier=tier, keep_alive_clamped=clamped)

    @staticmethod
    def _message(model: str, message: Message) -> dict[str, Any]:
        if message.role not in ROLES:
            raise BadRequestError(
                f"invalid message role {message.role!r}: use system, user, assistant or tool"
            )
        if message.images:
            raise BadRequestError(f"model '{model}' is text-only and does not support images")
        return {"role": message.role, "content": message.content or ""}

    def _log_prompt(self, entry: ModelEntry, prompt: str) -> None:
        if self.settings.log_prompts:
            log.info("prompt", extra={"model": entry.name, "prompt": prompt})

    async def load_or_unload(self, prepared: Prepared) -> Chunk:
        """An empty prompt: load the model (or unload it when keep_alive is 0)."""
        g = prepared.generation
        if g.keep_alive_s == 0:
            await self.router.unload(prepared.entry, g)
            return Chunk(done=True, done_reason="unload")
        load_ns = await self.router.load(prepared.entry, g)
        return Chunk(done=True, done_reason="load", load_duration=load_ns, total_duration=load_ns)

    def stream(self, prepared: Prepared) -> AsyncIterator[Chunk]:
        return self.router.generate(prepared.entry, prepared.generation, prepared.route)

    async def open(
        self, prepared: Prepared, caller: Principal, cache_control: str | None = None
    ) -> tuple[CacheStatus, AsyncIterator[Chunk]]:
        """The answer's chunks: replayed from the cache, or generated within the caller's
        limits (and then cached when the request is deterministic)."""
        g = prepared.generation
        key = None
        if self.cache.enabled and (deterministic(g) or self.settings.cache_sampled):
            key = generation_key(caller.tenant, prepared.entry.digest, g)
        policy = CachePolicy.from_header(cache_control)
        status, chunks = await self.cache.stream(key, policy, self.metered(prepared, caller))
        if self.metrics is not None:
            self.metrics.cache.labels(status).inc()
        return status, chunks

    async def metered(self, prepared: Prepared, caller: Principal) -> AsyncIterator[Chunk]:
        """Generate within the caller's quota and parallel limit; count what it used."""
        await self.fair_use.check_quota(caller.key_id, caller.limits)
        holder = await self.fair_use.acquire(caller.key_id, caller.limits)
        prompt = completion = 0
        started = time.perf_counter()
        first = True
        try:
            # Closed at once when our consumer stops (at ``done``, or the client gone), not
            # later by the garbage collector.
            async with closing(self.stream(prepared)) as chunks:
                async for chunk in chunks:
                    if first and (chunk.text or chunk.done):
                        first = False
                        self._first_token(prepared, time.perf_counter() - started)
                    if chunk.done:
                        prompt, completion = chunk.prompt_tokens, chunk.eval_count
                        self._finished(prepared, chunk)
                    yield chunk
        finally:
            # Shielded: this also runs while a request is cancelled (client gone).
            self.tokens.note(prompt, completion)
            with anyio.CancelScope(shield=True):
                await self.fair_use.release(caller.key_id, holder)
                await self.fair_use.spend(caller.key_id, prompt + completion)
                if self.usage is not None and (prompt or completion):
                    await self.usage(caller, prepared.entry.name, prompt, completion)

    def _first_token(self, prepared: Prepared, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.ttft.labels(prepared.entry.name).observe(seconds)

    def _finished(self, prepared: Prepared, chunk: Chunk) -> None:
        m = self.metrics
        if m is None:
            return
        model = prepared.entry.name
        m.tokens.labels(model, "prompt").inc(chunk.prompt_tokens)
        m.tokens.labels(model, "completion").inc(chunk.eval_count)
        if chunk.eval_count and chunk.eval_duration:
            m.tokens_per_second.labels(model).observe(chunk.eval_count / chunk.eval_duration * 1e9)
        m.routed.labels(prepared.route.deployment or "unknown", prepared.route.model or model).inc()

    # --- embeddings ----------------------------------------------------------------------------

    async def embed(
        self,
        req: EmbedRequest,
        caller: Principal,
        cache_control: str | None = None,
        route: Route | None = None,
    ) -> tuple[CacheStatus, Embeddings]:
        """Embeddings (always deterministic, so cached unless the request says otherwise)."""
        entry = await self.model(req.model, tenant=caller.tenant)
        inputs = [req.input] if isinstance(req.input, str) else list(req.input)
        if not inputs:
            raise BadRequestError("input is required: a string or a list of strings")
        if len(inputs) > self.settings.max_embed_inputs:
            raise BadRequestError(
                f"too many inputs: {len(inputs)} (the limit is {self.settings.max_embed_inputs})"
            )
        empty = next((i for i, text in enumerate(inputs) if not text), None)
        if empty is not None:
            where = "input" if isinstance(req.input, str) else f"input {empty}"
            raise BadRequestError(f"{where} is empty: there is nothing to embed")
        opts = self.options(entry, req.options)
        num_ctx, _ = self.limits(opts)
        keep_alive_s, _ = self.keep_alive(req.keep_alive, caller)
        payload = {
            "model": entry.name,
            "inputs": inputs,
            "truncate": req.truncate,
            "num_ctx": num_ctx,
            "dimensions": req.dimensions,
        }
        key = cache_key("embed", caller.tenant, entry.digest, payload)
        policy = CachePolicy.from_header(cache_control)
        if self.cache.enabled and policy.read:
            stored = await self.cache.get(key)
            if stored is not None:
                return "hit", Embeddings(**{**stored, "load_duration": 0})
        await self.fair_use.check_quota(caller.key_id, caller.limits)
        holder = await self.fair_use.acquire(caller.key_id, caller.limits)
        try:
            request = Embedding(
                model_path=entry.base.path(),
                model_name=entry.name,
                inputs=inputs,
                truncate=req.truncate,
                num_ctx=num_ctx,
                keep_alive_s=keep_alive_s,
                dimensions=req.dimensions,
            )
            result = await self.router.embed(entry, request, route)
        finally:
            await self.fair_use.release(caller.key_id, holder)
        await self.fair_use.spend(caller.key_id, result.prompt_eval_count)
        self.tokens.note(result.prompt_eval_count, 0)
        if self.usage is not None:
            await self.usage(caller, entry.name, result.prompt_eval_count, 0)
        if req.dimensions:
            result.vectors = [_renormalise(v[: req.dimensions]) for v in result.vectors]
        if not self.cache.enabled or not policy.write:
            return "bypass" if not self.cache.enabled else "miss", result
        await self.cache.put(key, dataclasses.asdict(result))
        return "miss", result


def _is_admin(caller: Principal | None) -> bool:
    """Whether ``caller`` may unload, pin or shorten the shared engine's models."""
    return caller is not None and "admin" in caller.scopes


def bounded_keep_alive(seconds: float, bounds: tuple[float, float]) -> float:
    """``seconds`` (``math.inf``: forever) clamped into ``bounds``: what a key that may not
    unload or pin the shared engine's models gets. 0 (unload) becomes the lower bound,
    forever the upper one."""
    low, high = bounds
    return min(max(seconds, low), high)


def _renormalise(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]
