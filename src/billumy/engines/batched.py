"""Continuous batching: one llama.cpp context, many sequences, one scheduler thread.

A :class:`BatchedModel` holds one context with ``num_parallel`` sequences of ``n_ctx`` tokens
each (Ollama's sizing: the context is ``n_ctx * num_parallel``). Its scheduler thread runs steps:
each step decodes, in one ``llama_decode``, one token for every sequence that is generating and
up to ``prefill_chunk`` tokens of each prompt still being read (chunked prefill, so a long
prompt does not stall the streams already running for long). Requests join between steps (from
idle, the scheduler waits a few milliseconds for the rest of a burst, so that its prompts are
read together); finished and cancelled ones leave at once. A finished sequence's KV stays in
its slot: a new prompt goes to the free slot holding its longest prefix (a chat's next turn)
and evaluates only the rest, as llama-server's ``cache_prompt`` does: ``prompt_eval_count``
counts the tokens evaluated, ``prompt_cached`` those reused (usage and quotas count both: the
whole prompt).

A sequence past its deadline leaves at the next step with a 504; one whose client went away
(``cancel``) leaves at the next step too, before it is decoded again.

Each sequence has its own sampler chain (penalties, grammar, then greedy, mirostat or
top-k/typical/top-p/min-p/temperature with its own seed), built in the order llama-cpp-python's
``Llama.generate`` builds it, so that a request samples the same here as on a context of its own.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp import Llama

from billumy.engines.base import Chunk, Sampling
from billumy.engines.decoding import TextAssembler
from billumy.errors import BadRequestError, EngineError, GenerationTimeoutError

log = logging.getLogger(__name__)

Emit = Callable[[Chunk | BaseException], None]


def sampler_chain(llm: Llama, s: Sampling, grammar: str | None) -> Any:
    """A new sampler chain for ``s`` (the caller frees it). A grammar llama.cpp cannot read is
    a 400 (its parser returns no sampler)."""
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    add = llama_cpp.llama_sampler_chain_add
    n_vocab = llm.n_vocab()
    add(
        chain,
        llama_cpp.llama_sampler_init_penalties(
            n_vocab, s.repeat_last_n, s.repeat_penalty, s.frequency_penalty, s.presence_penalty
        ),
    )
    if grammar is not None:
        checked = llama_cpp.llama_sampler_init_grammar(llm._model.vocab, grammar.encode(), b"root")
        if not checked:
            llama_cpp.llama_sampler_free(chain)
            raise BadRequestError(
                "format: llama.cpp could not read the grammar made from it; simplify the schema"
            )
        add(chain, checked)
    seed = s.seed if s.seed is not None and s.seed >= 0 else secrets.randbits(32)
    if s.temperature < 0:
        add(chain, llama_cpp.llama_sampler_init_dist(seed))
    elif s.temperature == 0:
        add(chain, llama_cpp.llama_sampler_init_greedy())
    elif s.mirostat == 1:
        add(
            chain,
            llama_cpp.llama_sampler_init_mirostat(
                n_vocab, seed, s.mirostat_tau, s.mirostat_eta, 100
            ),
        )
    elif s.mirostat == 2:
        add(chain, llama_cpp.llama_sampler_init_mirostat_v2(seed, s.mirostat_tau, s.mirostat_eta))
    else:
        add(chain, llama_cpp.llama_sampler_init_top_k(s.top_k))
        add(chain, llama_cpp.llama_sampler_init_typical(s.typical_p, 1))
        add(chain, llama_cpp.llama_sampler_init_top_p(s.top_p, 1))
        add(chain, llama_cpp.llama_sampler_init_min_p(s.min_p, 1))
        add(chain, llama_cpp.llama_sampler_init_temp(s.temperature))
        add(chain, llama_cpp.llama_sampler_init_dist(seed))
    return chain


class Greedy:
    """Greedy sampling after the repeat penalty, on the logits themselves.

    The same token as the chain of llama.cpp's penalties and greedy samplers (see
    :func:`sampler_chain`), which copies the whole vocabulary into a candidate array and looks
    every candidate up in the window's counts: about 0.3 ms a token here, while llama.cpp's
    threads wait. Here only the window's tokens are penalised (on a copy), and the argmax is
    numpy's, which, like llama.cpp's greedy sampler, takes the first of equal maxima. Only for
    what it reproduces bit for bit: temperature 0, no grammar, and no frequency or presence
    penalty (their sum is one rounding in llama.cpp, maybe two here).
    """

    def __init__(self, s: Sampling, n_vocab: int) -> None:
        self.n_vocab = n_vocab
        self.last_n = max(s.repeat_last_n, 0)
        self.penalty = np.float32(s.repeat_penalty)
        self.window: deque[int] = deque()
        self.counts: dict[int, int] = {}
        self.penalised = self.last_n > 0 and s.repeat_penalty != 1.0

    @staticmethod
    def serves(s: Sampling, grammar: str | None) -> bool:
        return (
            s.temperature == 0
            and grammar is None
            and s.frequency_penalty == 0
            and s.presence_penalty == 0
        )

    def sample(self, ctx: Any, index: int) -> int:
        pointer = llama_cpp.llama_get_logits_ith(ctx, index)
        logits = np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))
        if self.penalised and self.counts:
            logits = logits.copy()
            ids = np.fromiter(self.counts, dtype=np.int64, count=len(self.counts))
            seen = logits[ids]
            logits[ids] = np.where(seen <= 0, seen * self.penalty, seen / self.penalty)
        token = int(logits.argmax())
        self.accept(token)
        return token

    def accept(self, token: int) -> None:
        """The window of the last ``repeat_last_n`` sampled tokens, as llama.cpp keeps it."""
        if not self.penalised:
            return
        self.counts[token] = self.counts.get(token, 0) + 1
        if len(self.window) >= self.last_n:
            old = self.window.popleft()
            self.counts[old] -= 1
            if not self.counts[old]:
                del self.counts[old]
        self.window.append(token)


@dataclass(eq=False)
class Sequence:
    """One request in the batch (``BatchedModel.cancel`` ends it from any thread)."""

    tokens: list[int]  # the prompt
    budget: int  # tokens it may generate
    stops: list[str]
    sampling: Sampling
    grammar: str | None
    emit: Emit  # chunks and errors, called from the scheduler thread
    on_exit: Callable[[], None]  # called once from the scheduler thread when it has left
    seq_id: int = -1
    chain: Any = None
    greedy: Greedy | None = None  # instead of the chain, where it gives the same tokens
    fed: int = 0  # prompt tokens in the KV so far (reused or decoded)
    past: int = 0  # positions in the KV: what a slot keeps once the sequence is done
    reused: int = 0  # prompt tokens whose KV was already in the slot
    finished: bool = False  # ended normally (its KV may serve a later prompt)
    generated: list[int] = field(default_factory=list)
    last: int = -1  # the token sampled last, decoded in the next step
    assembler: TextAssembler | None = None
    started_ns: int = 0
    first_ns: int = 0
    deadline: float = 0.0  # time.monotonic() by which it must be done; 0: none
    cancelled: bool = False
    cancel_step: int = -1  # the model's step count when it was cancelled

    @property
    def prefilling(self) -> bool:
        return self.fed < len(self.tokens)


class BatchedModel:
    """One llama.cpp context serving up to ``num_parallel`` sequences at once.

    ``llm`` supplies the weights and the tokenizer; the context is this object's own. Methods
    other than :meth:`submit`, :meth:`close` and the properties belong to the scheduler thread.
    """

    def __init__(
        self,
        llm: Llama,
        *,
        n_ctx: int,
        num_parallel: int,
        threads: int,
        prefill_chunk: int = 128,
        gather_s: float = 0.004,
    ) -> None:
        self.llm = llm
        self.n_ctx = n_ctx
        self.num_parallel = num_parallel
        self.prefill_chunk = prefill_chunk
        self.gather_s = gather_s
        self.n_batch = (prefill_chunk + 1) * num_parallel
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx * num_parallel
        params.n_batch = self.n_batch
        params.n_ubatch = self.n_batch
        params.n_seq_max = num_parallel
        params.n_threads = threads
        params.n_threads_batch = threads
        params.kv_unified = False
        params.no_perf = True
        ctx = llama_cpp.llama_init_from_model(llm._model.model, params)
        if not ctx:
            raise EngineError("llama.cpp could not create the batched context")
        self._ctx = ctx
        if llama_cpp.llama_n_ctx_seq(ctx) < n_ctx:
            llama_cpp.llama_free(ctx)
            raise EngineError(f"llama.cpp gave fewer than {n_ctx} tokens per sequence")
        self._memory = llama_cpp.llama_get_memory(ctx)
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self._vocab = llm._model.vocab
        self._free_ids = list(range(num_parallel))
        self._kept: dict[int, list[int]] = {}  # slot -> the tokens its KV holds
        self._kept_at: dict[int, int] = {}  # slot -> the step its tokens were kept at
        self._pending: list[Sequence] = []
        self._running: list[Sequence] = []
        self._wake = threading.Condition()
        self._closing = False
        self.steps = 0  # decode calls so far
        self.batch_tokens = 0  # tokens they decoded
        self.batch_sequences = 0  # sequences in them, added up over the steps
        self._outbox: list[tuple[Emit, Chunk]] | None = None  # a step's chunks, sent together
        self._thread = threading.Thread(target=self._loop, name="llama-batch", daemon=True)
        self._thread.start()

    # --- any thread -----------------------------------------------------------------------

    @property
    def active(self) -> int:
        """Sequences admitted or waiting to be."""
        with self._wake:
            return len(self._pending) + len(self._running)

    def submit(self, sequence: Sequence) -> None:
        """Queue ``sequence``; it joins the batch at the next step with a free slot."""
        with self._wake:
            if self._closing:
                raise EngineError("the model is being unloaded")
            self._pending.append(sequence)
            self._wake.notify()

    @property
    def running(self) -> int:
        """Sequences in the batch now (admitted, reading their prompt or generating)."""
        return len(self._running)

    def cancel(self, sequence: Sequence) -> None:
        """Its client has gone: the sequence leaves before the next step decodes anything."""
        with self._wake:
            if not sequence.cancelled:
                sequence.cancel_step = self.steps
                sequence.cancelled = True
            self._wake.notify()

    def close(self) -> None:
        """Stop the scheduler (sequences still in it end with an error) and free the context.
        Blocking: waits for the step in progress."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        if self._thread is not threading.current_thread():
            self._thread.join()
        if self._ctx:
            llama_cpp.llama_batch_free(self._batch)
            llama_cpp.llama_free(self._ctx)
            self._ctx = None

    # --- the scheduler thread -------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._closing and not self._pending and not self._running:
                    self._wake.wait()
                if not self._running:
                    self._gather_locked()
                if self._closing:
                    leaving = self._pending + self._running
                    self._pending, self._running = [], []
                    break
                admitted = self._admit_locked()
            try:
                for sequence in admitted:
                    self._start(sequence)
                self._step()
            except Exception as exc:  # a failed step fails its sequences, not the process
                log.exception("batched decode failed")
                for sequence in list(self._running):
                    self._leave(sequence, EngineError(f"generation failed: {exc}"))
        for sequence in leaving:
            self._leave(sequence, EngineError("the model was unloaded during the generation"))

    def _gather_locked(self) -> None:
        """From idle, wait for the requests that arrive with the first one (a client's burst
        reaches the engine over a few milliseconds): until ``gather_s`` passes with no new
        one, or ``5 * gather_s`` in all. Their prompts are then read in one decode and their
        first tokens come together, not each after the prompts before it."""
        started = time.monotonic()
        deadline = started + self.gather_s
        count = len(self._pending)
        while not self._closing and len(self._pending) < len(self._free_ids):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._wake.wait(left)
            if len(self._pending) > count:
                count = len(self._pending)
                deadline = min(time.monotonic() + self.gather_s, started + 5 * self.gather_s)

    def _admit_locked(self) -> list[Sequence]:
        admitted = []
        while self._pending and self._free_ids:
            sequence = self._pending.pop(0)
            if sequence.cancelled:
                sequence.on_exit()
                continue
            sequence.seq_id = self._pick_slot_locked(sequence)
            self._running.append(sequence)
            admitted.append(sequence)
        return admitted

    def _pick_slot_locked(self, sequence: Sequence) -> int:
        """A free slot: the one whose kept KV is mostly (3/4) a prefix of this prompt (a chat's
        next turn), else an empty one, else the one kept longest ago. A prompt that merely
        shares a system prompt does not take the slot of a conversation that may go on."""

        def similarity(slot: int) -> float:
            kept = self._kept.get(slot)
            return common_prefix(kept, sequence.tokens) / len(kept) if kept else 0.0

        best = max(self._free_ids, key=similarity)
        if similarity(best) < 0.75:
            empty = [slot for slot in self._free_ids if slot not in self._kept]
            best = empty[0] if empty else min(self._free_ids, key=lambda s: self._kept_at[s])
        self._free_ids.remove(best)
        return best

    def _start(self, sequence: Sequence) -> None:
        s = sequence.sampling
        sequence.started_ns = time.perf_counter_ns()
        sequence.assembler = TextAssembler(list(s.stop) + sequence.stops)
        kept = self._kept.pop(sequence.seq_id, [])
        # A seeded request that samples evaluates its whole prompt: a reused prefix changes the
        # logits in the last bits, and the same seed would not give the same text. At least
        # the last prompt token is decoded, for its logits.
        seeded = s.seed is not None and s.seed >= 0 and s.temperature > 0
        reuse = 0 if seeded else min(common_prefix(kept, sequence.tokens), len(sequence.tokens) - 1)
        llama_cpp.llama_memory_seq_rm(self._memory, sequence.seq_id, reuse, -1)
        sequence.fed = sequence.past = sequence.reused = reuse
        if Greedy.serves(s, sequence.grammar):
            sequence.greedy = Greedy(s, self.llm.n_vocab())
            return
        try:
            sequence.chain = sampler_chain(self.llm, s, sequence.grammar)
        except BadRequestError as exc:
            self._leave(sequence, exc)

    def _leave(self, sequence: Sequence, error: BaseException | None = None) -> None:
        """Take ``sequence`` out of the batch and free what it held."""
        if sequence in self._running:
            self._running.remove(sequence)
        if sequence.seq_id >= 0:
            if sequence.finished:
                kept = (sequence.tokens + sequence.generated)[: sequence.past]
                self._kept[sequence.seq_id] = kept
                self._kept_at[sequence.seq_id] = self.steps
            else:
                llama_cpp.llama_memory_seq_rm(self._memory, sequence.seq_id, -1, -1)
            with self._wake:
                self._free_ids.append(sequence.seq_id)
            sequence.seq_id = -1
        if sequence.chain is not None:
            llama_cpp.llama_sampler_free(sequence.chain)
            sequence.chain = None
        if error is not None:
            sequence.emit(error)
        sequence.on_exit()

    def _step(self) -> None:
        """One decode: a token for each generating sequence, then prompt chunks."""
        now = time.monotonic()
        for sequence in list(self._running):
            if sequence.cancelled:
                self._stopped_early(sequence)
                self._leave(sequence)
            elif sequence.deadline and now >= sequence.deadline:
                log.info(
                    "generation passed its deadline",
                    extra={"eval_count": len(sequence.generated)},
                )
                self._leave(
                    sequence,
                    GenerationTimeoutError(
                        "the generation passed the request's deadline "
                        f"after {len(sequence.generated)} tokens"
                    ),
                )
        generating = [s for s in self._running if not s.prefilling]
        # Every prompt being read advances by up to prefill_chunk tokens a step, all in the same
        # decode as the generating sequences' tokens: prompts that arrive together are read
        # together (their first tokens come together, and a wide batch reads the weights
        # fewer times), and a long prompt still takes several steps.
        chunks: list[tuple[Sequence, int]] = [
            (s, min(self.prefill_chunk, len(s.tokens) - s.fed))
            for s in self._running
            if s.prefilling
        ]
        if not generating and not chunks:
            return
        self.steps += 1
        self.batch_sequences += len(generating) + len(chunks)
        parts = [(s, [s.last], len(s.tokens) + len(s.generated) - 1, True) for s in generating]
        for sequence, take in chunks:
            start = sequence.fed
            sequence.fed += take
            last = sequence.fed == len(sequence.tokens)
            parts.append((sequence, sequence.tokens[start : sequence.fed], start, last))
        # In slot order: with a cache per sequence, llama.cpp cuts a batch into ubatches of
        # sequences whose ids follow one another in the batch (0, 1, 2, 3 is one ubatch; 2, 0,
        # 3, 1 is two, and 3, 2, 1, 0 four), and each ubatch reads all the weights again.
        parts.sort(key=lambda part: part[0].seq_id)
        self._decode(parts)

    def _decode(self, parts: list[tuple[Sequence, list[int], int, bool]]) -> None:
        """Decode ``parts`` (a sequence, its tokens, the first one's position, whether the last
        one's logits are wanted) in one llama_decode, then sample the sequences that want it."""
        batch = self._batch
        n = 0
        outputs: list[tuple[Sequence, int]] = []  # sequence, its logits' index in the batch
        for sequence, tokens, first, wanted in parts:
            for offset, token in enumerate(tokens):
                batch.token[n] = token
                batch.pos[n] = first + offset
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = sequence.seq_id
                logits = wanted and offset == len(tokens) - 1
                batch.logits[n] = logits
                if logits:
                    outputs.append((sequence, n))
                n += 1
            sequence.past += len(tokens)
        batch.n_tokens = n
        status = llama_cpp.llama_decode(self._ctx, batch)
        if status != 0:
            raise EngineError(f"llama_decode returned {status}")
        self.batch_tokens += n
        # Every sequence is sampled before any chunk goes out: the chunks of one step reach
        # the event loop together, in one wake-up, not one per sequence between samplings
        # (each wake-up takes a core from llama.cpp's threads in the middle of the next step).
        self._outbox = []
        try:
            for sequence, index in outputs:
                self._sample(sequence, index)
        finally:
            outbox, self._outbox = self._outbox, None
            for emit, item in outbox:
                emit(item)

    def _stopped_early(self, sequence: Sequence) -> None:
        log.info(
            "generation stopped early",
            extra={
                "eval_count": len(sequence.generated),
                "steps_after_cancel": self.steps - sequence.cancel_step,
            },
        )

    def _sample(self, sequence: Sequence, index: int) -> None:
        if sequence.greedy is not None:
            token = sequence.greedy.sample(self._ctx, index)
        else:
            token = llama_cpp.llama_sampler_sample(sequence.chain, self._ctx, index)
        now = time.perf_counter_ns()
        if not sequence.first_ns:
            sequence.first_ns = now
        assembler = sequence.assembler
        assert assembler is not None
        stopped = False
        if sequence.budget <= 0:
            pass  # the prompt fills the context (or num_predict is 0): nothing to add
        elif llama_cpp.llama_vocab_is_eog(self._vocab, token):
            stopped = True
        else:
            sequence.generated.append(token)
            sequence.last = token
            piece = assembler.feed(self.llm.detokenize([token]))
            if piece:
                self._send(sequence, Chunk(text=piece))
            stopped = assembler.stopped
        if not stopped and len(sequence.generated) < sequence.budget and not sequence.cancelled:
            return
        tail = assembler.flush()
        if tail:
            self._send(sequence, Chunk(text=tail))
        done = Chunk(
            done=True,
            done_reason="stop" if stopped else "length",
            context=sequence.tokens + sequence.generated,
            prompt_eval_count=len(sequence.tokens) - sequence.reused,
            prompt_cached=sequence.reused,
            prompt_eval_duration=sequence.first_ns - sequence.started_ns,
            eval_count=len(sequence.generated) + (1 if stopped else 0),
            eval_duration=now - sequence.first_ns,
        )
        if sequence.cancelled:
            self._stopped_early(sequence)  # in this step: it keeps what it decoded
        sequence.finished = True
        self._leave(sequence)  # out of the batch before its client hears it is done
        self._send(sequence, done)

    def _send(self, sequence: Sequence, item: Chunk) -> None:
        """``item`` to ``sequence``'s client: at the end of the step when one is sampling."""
        if self._outbox is not None:
            self._outbox.append((sequence.emit, item))
        else:
            sequence.emit(item)


def common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
