"""What runs on one loaded llama.cpp context: loading it, and generating in a worker thread.

Everything here blocks; :mod:`billumy.engines.llamacpp` calls it off the event loop.
"""

from __future__ import annotations

import ctypes
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import llama_cpp
from llama_cpp import Llama
from llama_cpp.llama_grammar import LlamaGrammar

from billumy import gotemplate
from billumy.engines.base import Chunk, Generation
from billumy.engines.batched import BatchedModel
from billumy.engines.decoding import TextAssembler
from billumy.engines.prompting import PromptBuilder
from billumy.errors import BadRequestError, BillumyError, EngineError, GenerationTimeoutError

log = logging.getLogger(__name__)


def check_grammar(llm: Llama, text: str) -> LlamaGrammar:
    """``text`` as a grammar, once llama.cpp has read it. Its parser prints an error and returns
    no grammar for text it cannot read, and llama-cpp-python would add that null sampler to
    the chain and crash on it: refused here instead (400)."""
    sampler = llama_cpp.llama_sampler_init_grammar(llm._model.vocab, text.encode(), b"root")
    if not sampler:
        raise BadRequestError(
            "format: llama.cpp could not read the grammar made from it; simplify the schema"
        )
    llama_cpp.llama_sampler_free(sampler)
    return LlamaGrammar.from_string(text, verbose=False)


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
    unloading: bool = False  # an unload came while it was busy: freed when it is let go
    expires_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    grammars: dict[str, LlamaGrammar] = field(default_factory=dict)  # checked ones
    floor: TokenFloor | None = None  # made on first use (a pass over the vocabulary)
    batch: BatchedModel | None = None  # with batching: the context every generation shares
    users: int = 0  # with batching: the generations (and loads) holding it

    def grammar(self, text: str | None) -> LlamaGrammar | None:
        """The grammar for ``text``, checked by llama.cpp the first time this context uses it."""
        if text is None:
            return None
        found = self.grammars.get(text)
        if found is None:
            found = check_grammar(self.llm, text)
            if len(self.grammars) >= 64:
                self.grammars.pop(next(iter(self.grammars)))
            self.grammars[text] = found
        return found


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


def embed_texts(
    llm: Llama, inputs: list[str], truncate: bool, num_ctx: int
) -> tuple[list[list[float]], int]:
    """Mean-pooled, L2-normalised embeddings of ``inputs`` and the tokens they took."""
    vectors: list[list[float]] = []
    count = 0
    for number, text in enumerate(inputs):
        tokens = llm.tokenize(text.encode(), add_bos=True, special=False)
        if len(tokens) > num_ctx:
            if not truncate:
                raise BadRequestError(
                    f"input length ({len(tokens)} tokens) exceeds the context length ({num_ctx})"
                )
            tokens = tokens[:num_ctx]
        text_in = llm.detokenize(tokens).decode("utf-8", errors="ignore")
        # Llama.embed tokenizes again; for no tokens at all llama-cpp-python writes before its
        # batch, and the heap it corrupts kills the process later.
        if not tokens or not llm.tokenize(text_in.encode()):
            raise BadRequestError(f"input {number} is empty: there is nothing to embed")
        count += len(tokens)
        vectors.append([float(x) for x in llm.embed(text_in, normalize=True, truncate=True)])
    return vectors, count


def prompt_builder(llm: Llama) -> PromptBuilder:
    def text(token: int) -> str:
        return str(llm._model.token_get_text(token)) if token >= 0 else ""

    template = llm.metadata.get("tokenizer.chat_template")
    return PromptBuilder(template, bos=text(llm.token_bos()), eos=text(llm.token_eos()))


def generate_in_thread(
    runner: Runner,
    request: Generation,
    grammar: str | None,
    stop: threading.Event,
    emit: Callable[[Chunk | BaseException], None],
    deadline: float = 0.0,
) -> None:
    """Runs in a worker thread: tokenize, sample, and hand chunks to the event loop.
    ``grammar``: GBNF text that the output must match; ``deadline``: the
    ``time.monotonic()`` past which it stops with a 504 (0: none)."""
    try:
        _generate_tokens(runner, request, runner.grammar(grammar), stop, emit, deadline)
    except BaseException as exc:  # everything goes back to the loop, never lost in a thread
        if isinstance(exc, BillumyError):
            emit(exc)
            return
        log.exception("generation failed", extra={"model": request.model_name})
        emit(EngineError(f"generation failed: {describe(exc)}"))


def describe(exc: BaseException) -> str:
    """An exception as a message that is never empty."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass(frozen=True)
class TokenFloor:
    """A cheap lower bound on the tokens of a text, to refuse a prompt that cannot fit before
    llama.cpp tokenizes it: its special-token partitioning takes time quadratic in the special
    tokens a text holds (10,000 took 4 s, a 8 MiB body of them hours)."""

    longest: int  # bytes in the model's longest token
    specials: re.Pattern[str] | None  # the texts of its control and user-defined tokens

    @classmethod
    def of(cls, llm: Llama) -> TokenFloor:
        vocab = llm._model.vocab
        buffer = ctypes.create_string_buffer(256)
        longest, specials = 1, []
        kinds = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
        for token in range(llm.n_vocab()):
            size = llama_cpp.llama_token_to_piece(vocab, token, buffer, len(buffer), 0, True)
            longest = max(longest, abs(size))  # negative: the size the piece needs
            if llama_cpp.llama_vocab_get_attr(vocab, token) & kinds:
                text = llama_cpp.llama_vocab_get_text(vocab, token)
                if text:
                    specials.append(text.decode("utf-8", errors="ignore"))
        specials = sorted({t for t in specials if t}, key=len, reverse=True)
        pattern = re.compile("|".join(map(re.escape, specials))) if specials else None
        return cls(longest=longest, specials=pattern)

    def tokens(self, text: str) -> int:
        """At most this many fewer tokens than llama.cpp makes of ``text``: each token covers
        at most ``longest`` bytes (halved, for normalisations that shorten text), and each
        special token's text is one token."""
        floor = len(text.encode()) // (2 * self.longest)
        if self.specials is not None:
            floor = max(floor, sum(1 for _ in self.specials.finditer(text)))
        return floor


def prompt_tokens(
    runner: Runner, request: Generation, n_ctx: int | None = None
) -> tuple[list[int], list[str]]:
    """The prompt's tokens (after ``context``) and the template's stop sequences, to fit
    ``n_ctx`` tokens (default: the runner's context; a batched sequence may have fewer).

    With ``truncate`` (chats), the oldest turns are left out until the prompt leaves room for
    the reply, as Ollama does; system messages, the first ``keep_messages`` and the last message
    always stay. Otherwise a prompt that does not fit is a 400.
    """
    llm = runner.llm
    n_vocab = llm.n_vocab()
    for token in request.context:
        if not 0 <= token < n_vocab:
            raise BadRequestError(
                f"context holds {token}, which is not a token of this model "
                f"(its ids run from 0 to {n_vocab - 1})"
            )
    if runner.floor is None:
        runner.floor = TokenFloor.of(llm)
    floor = runner.floor
    n_ctx = n_ctx or runner.n_ctx
    room = min(request.num_predict, n_ctx // 4) if request.truncate else 1
    budget = n_ctx - room

    # A text of this many characters has at least as many bytes, so ``floor`` finds it too
    # long: a template's rendering stops there (a few hundred KiB, not its 32 MiB limit).
    max_chars = n_ctx * 2 * floor.longest

    def render(req: Generation) -> tuple[list[int] | None, list[str]]:
        """The tokens, or None for a text too long to fit the context (left untokenized)."""
        try:
            text, stops = runner.prompts.build(req, max_chars=max_chars)
        except gotemplate.OutputTooLongError:
            return None, []
        if len(req.context) + floor.tokens(text) >= n_ctx:
            return None, stops
        tokens = list(req.context) + llm.tokenize(
            text.encode(), add_bos=not req.context, special=True
        )
        return tokens, stops

    tokens, stops = render(request)
    messages = request.messages
    if (tokens is not None and len(tokens) <= budget) or not request.truncate or not messages:
        return _checked(n_ctx, tokens), stops
    droppable = [
        i
        for i, m in enumerate(messages[:-1])
        if i >= request.keep_messages and m.get("role") != "system"
    ]

    def without(count: int) -> Generation:
        dropped = set(droppable[:count])
        kept = [m for i, m in enumerate(messages) if i not in dropped]
        return replace(request, messages=kept)

    # The fewest oldest turns to leave out, found in a logarithmic number of renderings (one
    # per dropped turn took minutes for a few thousand turns, holding the engine). Every turn
    # costs at least a token, so at most ``budget`` of the droppable ones can stay.
    low, high = (
        max(1, len(droppable) - budget, _must_drop(messages, droppable, max_chars)),
        len(droppable),
    )
    found: tuple[list[int], list[str]] | None = None
    while low <= high:
        middle = (low + high) // 2
        attempt, attempt_stops = render(without(middle))
        if attempt is not None and len(attempt) <= budget:
            found, high = (attempt, attempt_stops), middle - 1
        else:
            low = middle + 1
    if found is None:
        return _checked(n_ctx, render(without(len(droppable)))[0]), stops
    return _checked(n_ctx, found[0]), found[1]


def _must_drop(messages: list[dict[str, Any]], droppable: list[int], max_chars: int) -> int:
    """How many of the oldest ``droppable`` turns must go however the template writes the
    rest: the prompt holds every kept message's content, so the kept contents cannot pass
    ``max_chars``. Counting them is cheap; the renderings the search makes then hold only
    the newest turns (2,000 turns of 100 characters were 11 renderings of them all)."""
    dropping = set(droppable)
    size = sum(
        len(str(m.get("content") or "")) for i, m in enumerate(messages) if i not in dropping
    )
    for kept, index in enumerate(reversed(droppable)):
        size += len(str(messages[index].get("content") or ""))
        if size > max_chars:
            return len(droppable) - kept
    return 0


def _checked(n_ctx: int, tokens: list[int] | None) -> list[int]:
    if tokens is None:
        raise BadRequestError(
            f"the prompt is longer than the context length num_ctx={n_ctx} holds; "
            "shorten it or raise num_ctx"
        )
    if not tokens:
        raise BadRequestError(
            "the prompt is empty once its template is applied: there is nothing to generate from"
        )
    if len(tokens) >= n_ctx:
        raise BadRequestError(
            f"the prompt is {len(tokens)} tokens, which does not fit the context length "
            f"num_ctx={n_ctx}; shorten it or raise num_ctx"
        )
    return tokens


def _generate_tokens(
    runner: Runner,
    request: Generation,
    grammar: LlamaGrammar | None,
    stop: threading.Event,
    emit: Callable[[Chunk | BaseException], None],
    deadline: float = 0.0,
) -> None:
    llm = runner.llm
    n_ctx = min(request.num_ctx, runner.n_ctx)  # a larger context may run a smaller request
    tokens, template_stops = prompt_tokens(runner, request, n_ctx)
    budget = min(request.num_predict, n_ctx - len(tokens))
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
    late = threading.Event()

    def halt(_ids: Any, _logits: Any) -> bool:
        if deadline and time.monotonic() >= deadline:
            late.set()
        return stop.is_set() or late.is_set()

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
        stopping_criteria=llama_cpp.StoppingCriteriaList([halt]),
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
        if deadline and time.monotonic() >= deadline:
            late.set()
            break
    if late.is_set() and not stop.is_set():
        raise GenerationTimeoutError(
            f"the generation passed the request's deadline after {len(generated)} tokens"
        )
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
