"""What runs on one loaded llama.cpp context: loading it, and generating in a worker thread.

Everything here blocks; :mod:`billumy.engines.llamacpp` calls it off the event loop.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import llama_cpp
from llama_cpp import Llama
from llama_cpp.llama_grammar import LlamaGrammar, SchemaConverter

from billumy.engines.base import Chunk, Generation
from billumy.engines.decoding import TextAssembler
from billumy.engines.prompting import PromptBuilder
from billumy.errors import BadRequestError, BillumyError, EngineError

log = logging.getLogger(__name__)


class _SchemaConverter(SchemaConverter):
    """llama-cpp-python's converter, with literals escaped as GBNF needs.

    Its ``_format_literal`` escapes quotes and newlines but not backslashes, so in a string
    holding a double quote (an enum of column names with ``a"b``, a property named so) the
    backslash of JSON's escape ate the grammar's: llama.cpp could not parse the grammar, and
    sampling with it crashed the engine process (SIGSEGV), five of which in a minute leave
    the model down for every caller. A backslash itself came out as half an escape.
    """

    def _format_literal(self, literal: str) -> str:
        escaped = (
            literal.replace("\\", "\\\\")
            .replace('"', '\\"')
            .replace("\r", "\\r")
            .replace("\n", "\\n")
        )
        return f'"{escaped}"'

    def _generate_constant_rule(self, value: Any) -> str:
        # Non-ASCII as itself ("região"), not as a \\u escape the model would have to spell.
        return self._format_literal(json.dumps(value, ensure_ascii=False))


def json_schema_gbnf(schema: str) -> str:
    """The GBNF grammar for a JSON schema (as llama_cpp.llama_grammar.json_schema_to_gbnf,
    with literals escaped correctly)."""
    converter = _SchemaConverter(  # type: ignore[no-untyped-call]
        prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False
    )
    resolved = converter.resolve_refs(json.loads(schema), "stdin")
    converter.visit(resolved, "")  # type: ignore[no-untyped-call]
    return str(converter.format_grammar())  # type: ignore[no-untyped-call]


@lru_cache(maxsize=64)
def _grammar(spec: str) -> LlamaGrammar:
    if spec == "json":
        return LlamaGrammar.from_string(llama_cpp.llama_grammar.JSON_GBNF, verbose=False)
    try:
        return LlamaGrammar.from_string(json_schema_gbnf(spec), verbose=False)
    except Exception as exc:  # the converter raises plain exceptions on unsupported schemas
        raise BadRequestError(f"unsupported JSON schema in format: {exc}") from exc


def grammar_for(fmt: str | dict[str, Any] | None) -> LlamaGrammar | None:
    """The llama.cpp grammar that forces ``format``: any JSON, or JSON valid for a schema."""
    if fmt is None or fmt == "":
        return None
    if fmt == "json":
        return _grammar("json")
    if isinstance(fmt, dict):
        return _grammar(json.dumps(fmt, sort_keys=True))
    raise BadRequestError('format must be "json" or a JSON schema object')


@dataclass(eq=False)
class Runner:
    """One loaded llama.cpp context."""

    llm: Llama
    path: Path
    n_ctx: int
    size: int
    prompts: PromptBuilder
    name: str = ""
    busy: bool = False
    expires_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def open_model(path: Path, n_ctx: int, threads: int, *, embedding: bool = False) -> Llama:
    kwargs: dict[str, Any] = {}
    if embedding:
        kwargs = {
            "embedding": True,
            "pooling_type": llama_cpp.LLAMA_POOLING_TYPE_MEAN,
            "n_batch": n_ctx,
            "n_ubatch": n_ctx,
        }
    return Llama(
        model_path=str(path),
        n_ctx=n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
        **kwargs,
    )


def prompt_builder(llm: Llama) -> PromptBuilder:
    def text(token: int) -> str:
        return str(llm._model.token_get_text(token)) if token >= 0 else ""

    template = llm.metadata.get("tokenizer.chat_template")
    return PromptBuilder(template, bos=text(llm.token_bos()), eos=text(llm.token_eos()))


def generate_in_thread(
    runner: Runner,
    request: Generation,
    grammar: LlamaGrammar | None,
    stop: threading.Event,
    emit: Callable[[Chunk | BaseException], None],
) -> None:
    """Runs in a worker thread: tokenize, sample, and hand chunks to the event loop."""
    try:
        _generate_tokens(runner, request, grammar, stop, emit)
    except BaseException as exc:  # everything goes back to the loop, never lost in a thread
        emit(exc if isinstance(exc, BillumyError) else EngineError(f"generation failed: {exc}"))


def _prompt_tokens(runner: Runner, request: Generation) -> tuple[list[int], list[str]]:
    """The prompt's tokens (after ``context``) and the template's stop sequences.

    With ``truncate`` (chats), the oldest turns are left out until the prompt leaves room for
    the reply, as Ollama does; system messages, the first ``keep_messages`` and the last message
    always stay. Otherwise a prompt that does not fit is a 400.
    """
    llm = runner.llm
    room = min(request.num_predict, runner.n_ctx // 4) if request.truncate else 1
    while True:
        text, stops = runner.prompts.build(request)
        tokens = list(request.context) + llm.tokenize(
            text.encode(), add_bos=not request.context, special=True
        )
        if len(tokens) <= runner.n_ctx - room or not request.truncate or not request.messages:
            break
        droppable = [
            i
            for i, m in enumerate(request.messages[:-1])
            if i >= request.keep_messages and m.get("role") != "system"
        ]
        if not droppable:
            break
        messages = list(request.messages)
        del messages[droppable[0]]
        request = replace(request, messages=messages)
    if len(tokens) >= runner.n_ctx:
        raise BadRequestError(
            f"the prompt is {len(tokens)} tokens, which does not fit the context length "
            f"num_ctx={runner.n_ctx}; shorten it or raise num_ctx"
        )
    return tokens, stops


def _generate_tokens(
    runner: Runner,
    request: Generation,
    grammar: LlamaGrammar | None,
    stop: threading.Event,
    emit: Callable[[Chunk | BaseException], None],
) -> None:
    llm = runner.llm
    tokens, template_stops = _prompt_tokens(runner, request)
    budget = min(request.num_predict, runner.n_ctx - len(tokens))
    s = request.sampling
    if s.seed is not None and s.seed >= 0 and s.temperature > 0:
        # Reusing a cached prompt prefix changes the logits in the last bits, so the same seed
        # would not sample the same text; a seeded sampling request evaluates its whole prompt.
        # (Greedy decoding ignores the seed and keeps the prefix cache.)
        llm.reset()  # type: ignore[no-untyped-call]
    llm.set_seed(s.seed if s.seed is not None and s.seed >= 0 else secrets.randbits(32))
    assembler = TextAssembler([*s.stop, *template_stops])
    generated: list[int] = []
    t_prompt = time.perf_counter_ns()
    t_first = 0
    done_reason = "length"
    vocab = llm._model.vocab
    for token in llm.generate(
        tokens,
        top_k=s.top_k,
        top_p=s.top_p,
        min_p=s.min_p,
        typical_p=s.typical_p,
        temp=s.temperature,
        repeat_penalty=s.repeat_penalty,
        frequency_penalty=s.frequency_penalty,
        presence_penalty=s.presence_penalty,
        mirostat_mode=s.mirostat,
        mirostat_tau=s.mirostat_tau,
        mirostat_eta=s.mirostat_eta,
        grammar=grammar,
        stopping_criteria=llama_cpp.StoppingCriteriaList([lambda _ids, _logits: stop.is_set()]),
    ):
        if not t_first:
            t_first = time.perf_counter_ns()
        if budget <= 0:
            break
        if llama_cpp.llama_vocab_is_eog(vocab, token):
            done_reason = "stop"
            break
        generated.append(token)
        piece = assembler.feed(llm.detokenize([token]))
        if piece:
            emit(Chunk(text=piece))
        if assembler.stopped:
            done_reason = "stop"
            break
        if stop.is_set() or len(generated) >= budget:
            break
    # Checked before the final chunk goes out: after it, the consumer sets ``stop`` itself.
    cancelled = stop.is_set()
    tail = assembler.flush()
    if tail:
        emit(Chunk(text=tail))
    end = time.perf_counter_ns()
    t_first = t_first or end
    emit(
        Chunk(
            done=True,
            done_reason="stop" if done_reason == "stop" else "length",
            context=tokens + generated,
            prompt_eval_count=len(tokens),
            prompt_eval_duration=t_first - t_prompt,
            eval_count=len(generated) + (1 if done_reason == "stop" else 0),
            eval_duration=end - t_first,
        )
    )
    if cancelled:
        log.info(
            "generation stopped early",
            extra={"model": request.model_name, "eval_count": len(generated)},
        )
