"""The embedded engine: llama.cpp in this process, through llama-cpp-python.

llama.cpp calls block, so each generation runs in a worker thread and hands tokens to the event
loop as they come. A model has ``num_parallel`` slots: one llama.cpp context each, or with
``batching`` one context of ``num_parallel`` sequences (:mod:`billumy.engines.batched`).
Requests beyond them wait in one bounded queue shared by all models; a full one answers 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from llama_cpp import Llama

from billumy.engines.base import Chunk, Embeddings, Generation, LoadedModel, closing
from billumy.engines.batched import BatchedModel, Sequence
from billumy.engines.grammar import GrammarLimits, format_grammar
from billumy.engines.llamacpp_runner import (
    Runner,
    embed_texts,
    generate_in_thread,
    open_model,
    prompt_builder,
    prompt_tokens,
)
from billumy.errors import BillumyError, EngineError, GenerationTimeoutError, OverloadedError

log = logging.getLogger(__name__)

FOREVER = timedelta(days=365 * 100)


class LlamaCppEngine:
    """Serves GGUF models in-process."""

    def __init__(
        self,
        *,
        threads: int,
        num_parallel: int = 1,
        batching: bool = False,
        max_queue: int = 512,
        keep_alive_s: float = 300.0,
    ) -> None:
        self.threads = threads
        self.num_parallel = num_parallel
        self.batching = batching
        self.max_queue = max_queue
        self.keep_alive_s = keep_alive_s
        self._executor = ThreadPoolExecutor(
            max_workers=num_parallel * 4 + 2, thread_name_prefix="llama"
        )
        self._runners: dict[Path, list[Runner]] = {}
        self._slots: dict[Path, asyncio.Semaphore] = {}
        self._embedders: dict[Path, tuple[Llama, int]] = {}
        self._vocabs: dict[Path, Llama] = {}
        # Held while an embedder is in use: an unload waits for it rather than free a model
        # under a running llama_decode.
        self._embed_lock = asyncio.Lock()
        # llama.cpp loads and frees models one at a time, whichever thread asks.
        self._native = threading.Lock()
        self._waiting = 0
        self._loading: dict[Path, asyncio.Lock] = {}  # with batching: one load per model
        self._idle: dict[Path, asyncio.Event] = {}  # with batching: its last user has left
        # Counters of batched contexts already freed (``stats`` adds the live ones).
        self._retired = {"steps": 0, "batch_tokens": 0, "batch_sequences": 0}
        self._reaper: asyncio.Task[None] | None = None
        self._box: _Mailbox | None = None  # the batched sequences' chunks to the event loop

    def _mailbox(self, loop: asyncio.AbstractEventLoop) -> _Mailbox:
        if self._box is None or self._box.loop is not loop:
            self._box = _Mailbox(loop)
        return self._box

    # --- scheduling -------------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        return self._waiting

    async def _acquire(self, path: Path, deadline: float = 0.0) -> asyncio.Semaphore:
        """One of the model's slots; waits in the queue for it, until ``deadline``
        (``time.monotonic()``; 0: none) at most."""
        slots = self._slots.setdefault(path, asyncio.Semaphore(self.num_parallel))
        if slots.locked():
            if self._waiting >= self.max_queue:
                raise OverloadedError("server busy: the request queue is full, try again later")
            self._waiting += 1
            try:
                if deadline:
                    async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                        await slots.acquire()
                else:
                    await slots.acquire()
            except TimeoutError:
                raise GenerationTimeoutError(
                    "the request's deadline passed while it waited for the engine"
                ) from None
            finally:
                self._waiting -= 1
        else:
            await slots.acquire()
        return slots

    async def _run(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def _open(self, path: Path, n_ctx: int, *, embedding: bool = False) -> Llama:
        with self._native:
            return open_model(path, n_ctx, self.threads, embedding=embedding)

    def _close(self, llm: Llama, batch: BatchedModel | None = None) -> None:
        """Free a model nobody uses any more (blocking; call it off the event loop)."""
        with self._native:
            if batch is not None:
                batch.close()
                self._retired["steps"] += batch.steps
                self._retired["batch_tokens"] += batch.batch_tokens
                self._retired["batch_sequences"] += batch.batch_sequences
            llm.close()

    async def _checkout(self, path: Path, name: str, n_ctx: int) -> tuple[Runner, int]:
        """An idle runner for ``path`` with context ``n_ctx``; loads one if needed. Slot held.
        With batching, the model's one shared runner."""
        if self.batching:
            return await self._checkout_shared(path, name, n_ctx)
        pool = self._runners.setdefault(path, [])
        idle = [r for r in pool if not r.busy]
        # The same context size, else the smallest idle one that holds it: a request for a
        # smaller num_ctx runs in a larger context held to its own size (as a batched sequence
        # does), so one key's small num_ctx never makes the next request wait for a reload.
        fits = [r for r in idle if r.n_ctx >= n_ctx]
        runner = min(fits, key=lambda r: (r.n_ctx != n_ctx, r.n_ctx), default=None)
        load_ns = 0
        if runner is None:
            if len(pool) >= self.num_parallel and idle:
                # Same model, other context size: Ollama reloads too.
                stale = idle[0]
                pool.remove(stale)
                await self._run(lambda: self._close(stale.llm))
            start = time.perf_counter_ns()
            try:
                llm = await self._run(lambda: self._open(path, n_ctx))
            except BillumyError:
                raise
            except Exception as exc:
                raise EngineError(f"could not load model {name!r}: {exc}") from exc
            load_ns = time.perf_counter_ns() - start
            runner = Runner(
                llm=llm,
                path=path,
                n_ctx=n_ctx,
                size=int(llm._model.size()),
                prompts=prompt_builder(llm),
            )
            pool.append(runner)
            log.info(
                "model loaded",
                extra={"model": name, "num_ctx": n_ctx, "load_ms": load_ns // 1_000_000},
            )
        runner.busy = True
        runner.name = name
        return runner, load_ns

    async def _checkout_shared(self, path: Path, name: str, n_ctx: int) -> tuple[Runner, int]:
        pool = self._runners.setdefault(path, [])
        async with self._loading.setdefault(path, asyncio.Lock()):
            # A larger context than the loaded one: reload once its generations are done, as
            # Ollama does. A smaller one runs in it (its sequence holds to its own num_ctx), so
            # a short request never waits for long generations of a larger context to end.
            while pool and pool[0].n_ctx < n_ctx and pool[0].users:
                idle = self._idle.setdefault(path, asyncio.Event())
                idle.clear()
                await idle.wait()
            if pool and pool[0].n_ctx < n_ctx:
                stale = pool.pop()
                await self._run(lambda: self._close(stale.llm, stale.batch))
            load_ns = 0
            if not pool:
                start = time.perf_counter_ns()
                try:
                    runner = await self._run(lambda: self._open_shared(path, n_ctx))
                except BillumyError:
                    raise
                except Exception as exc:
                    raise EngineError(f"could not load model {name!r}: {exc}") from exc
                load_ns = time.perf_counter_ns() - start
                pool.append(runner)
                log.info(
                    "model loaded",
                    extra={"model": name, "num_ctx": n_ctx, "load_ms": load_ns // 1_000_000},
                )
            runner = pool[0]
        runner.users += 1
        runner.busy = True
        runner.name = name
        return runner, load_ns

    def _open_shared(self, path: Path, n_ctx: int) -> Runner:
        """The weights, with a small context of their own (tokenizing only), and the batched
        context of ``num_parallel`` sequences of ``n_ctx`` tokens."""
        with self._native:
            llm = open_model(path, 64, self.threads)
            try:
                batch = BatchedModel(
                    llm, n_ctx=n_ctx, num_parallel=self.num_parallel, threads=self.threads
                )
            except BaseException:
                llm.close()
                raise
        return Runner(
            llm=llm,
            path=path,
            n_ctx=n_ctx,
            size=int(llm._model.size()),
            prompts=prompt_builder(llm),
            batch=batch,
        )

    def _checkin(
        self, runner: Runner, keep_alive_s: float | None, *, extend_only: bool = False
    ) -> None:
        """Let go of ``runner``, loaded for ``keep_alive_s`` from now; with ``extend_only``
        (a caller that is not an admin) a later expiry it already had stays."""
        runner.users = max(0, runner.users - 1)
        runner.busy = runner.users > 0
        if not runner.busy and runner.path in self._idle:
            self._idle[runner.path].set()
        seconds = self.keep_alive_s if keep_alive_s is None else keep_alive_s
        if seconds < 0 or seconds >= FOREVER.total_seconds():
            expires_at = datetime.now(UTC) + FOREVER
        else:
            expires_at = datetime.now(UTC) + timedelta(seconds=seconds)
        if not extend_only or expires_at > runner.expires_at:
            runner.expires_at = expires_at
        if seconds == 0 and runner.busy:
            runner.unloading = True  # the shared context goes once its last generation ends
        if (seconds == 0 or runner.unloading) and not runner.busy:
            self._drop(runner)
        self._ensure_reaper()

    def _drop(self, runner: Runner) -> None:
        pool = self._runners.get(runner.path, [])
        if runner in pool:
            pool.remove(runner)
            self._executor.submit(self._close, runner.llm, runner.batch)
            log.info("model unloaded", extra={"model": runner.name})

    def _ensure_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.get_running_loop().create_task(self._reap())

    async def _reap(self) -> None:
        while any(self._runners.values()):
            now = datetime.now(UTC)
            for pool in list(self._runners.values()):
                for runner in list(pool):
                    if not runner.busy and runner.expires_at <= now:
                        self._drop(runner)
            await asyncio.sleep(1.0)

    # --- public API ---------------------------------------------------------------------------

    async def load(
        self,
        model_path: Path,
        model_name: str,
        num_ctx: int,
        keep_alive_s: float | None,
        *,
        extend_only: bool = True,
    ) -> int:
        """Load the model (an empty prompt in Ollama); returns the load time in ns."""
        slots = await self._acquire(model_path)
        try:
            runner, load_ns = await self._checkout(model_path, model_name, num_ctx)
            self._checkin(runner, keep_alive_s, extend_only=extend_only)
        finally:
            slots.release()
        return load_ns

    async def unload(self, model_path: Path) -> None:
        """Unload a model. A context that a generation still uses is freed when that
        generation lets go of it; the embedder, once the embedding running on it is done."""
        for runner in list(self._runners.get(model_path, [])):
            if runner.busy:
                runner.unloading = True
                runner.expires_at = datetime.now(UTC)
            else:
                self._drop(runner)
        async with self._embed_lock:
            embedder = self._embedders.pop(model_path, None)
            if embedder is not None:
                await self._run(lambda: self._close(embedder[0]))

    def loaded(self) -> list[LoadedModel]:
        return [
            LoadedModel(
                name=r.name,
                model_path=r.path,
                size=r.size,
                expires_at=r.expires_at,
                context_length=r.n_ctx,
            )
            for pool in self._runners.values()
            for r in pool
        ]

    def batch_stats(self, model_path: Path) -> dict[str, int]:
        """With batching, the model's scheduler counters: decode steps, tokens they decoded,
        sequences admitted or waiting (zeros when it is not loaded)."""
        for runner in self._runners.get(model_path, []):
            if runner.batch is not None:
                batch = runner.batch
                return {"steps": batch.steps, "tokens": batch.batch_tokens, "active": batch.active}
        return {"steps": 0, "tokens": 0, "active": 0}

    def stats(self) -> dict[str, int]:
        """Generations running now (sequences in a batch, or contexts generating), and with
        batching the decode steps so far, the tokens they decoded and the sequences in them
        (added up over the steps), every model together."""
        running, totals = 0, dict(self._retired)
        for pool in self._runners.values():
            for runner in pool:
                if runner.batch is None:
                    running += 1 if runner.busy else 0
                    continue
                batch = runner.batch
                running += batch.running
                totals["steps"] += batch.steps
                totals["batch_tokens"] += batch.batch_tokens
                totals["batch_sequences"] += batch.batch_sequences
        return {"running": running, **totals}

    def generate(self, request: Generation) -> AsyncIterator[Chunk]:
        """Stream a generation. Closing the iterator stops llama.cpp within a token."""
        if self.batching:
            return self._generate_batched(request)
        return self._generate_alone(request)

    async def _generate_alone(self, request: Generation) -> AsyncIterator[Chunk]:
        started = time.perf_counter_ns()
        deadline = _deadline(request)
        # The API process made the grammar within its limits; requests made here (the maestro
        # classifier) get one within the defaults. llama.cpp checks it in the worker thread.
        grammar = request.grammar or format_grammar(request.format, GrammarLimits())
        slots = await self._acquire(request.model_path, deadline)
        runner: Runner | None = None
        stop = threading.Event()
        future: asyncio.Future[Any] | None = None
        try:
            runner, load_ns = await self._checkout(
                request.model_path, request.model_name, request.num_ctx
            )
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue[Chunk | BaseException] = asyncio.Queue()

            def emit(item: Chunk | BaseException) -> None:
                loop.call_soon_threadsafe(queue.put_nowait, item)

            active = runner
            future = loop.run_in_executor(
                self._executor,
                lambda: generate_in_thread(active, request, grammar, stop, emit, deadline),
            )
            async with closing(_delivered(queue, started, load_ns)) as chunks:
                async for chunk in chunks:
                    yield chunk
        finally:
            # No awaits here: this also runs when the stream is cancelled (client gone) or the
            # generator is finalised by the garbage collector.
            stop.set()
            self._release_after(
                future, runner, slots, request.keep_alive_s, request.keep_alive_extends
            )

    async def _generate_batched(self, request: Generation) -> AsyncIterator[Chunk]:
        started = time.perf_counter_ns()
        deadline = _deadline(request)
        grammar = request.grammar or format_grammar(request.format, GrammarLimits())
        slots = await self._acquire(request.model_path, deadline)
        loop = asyncio.get_running_loop()
        runner: Runner | None = None
        sequence: Sequence | None = None
        left: asyncio.Future[None] = loop.create_future()  # the sequence has left the batch
        try:
            runner, load_ns = await self._checkout(
                request.model_path, request.model_name, request.num_ctx
            )
            shared = runner
            n_ctx = min(request.num_ctx, runner.n_ctx)
            tokens, stops = await self._run(lambda: prompt_tokens(shared, request, n_ctx))
            queue: asyncio.Queue[Chunk | BaseException] = asyncio.Queue()

            mailbox = self._mailbox(loop)

            def emit(item: Chunk | BaseException) -> None:
                mailbox.post(lambda: queue.put_nowait(item))

            def settle() -> None:
                if not left.done():
                    left.set_result(None)

            def on_exit() -> None:
                _post(loop, settle)

            sequence = Sequence(
                tokens=tokens,
                budget=min(request.num_predict, n_ctx - len(tokens)),
                stops=stops,
                sampling=request.sampling,
                grammar=grammar,
                emit=emit,
                on_exit=on_exit,
                deadline=deadline,
            )
            assert runner.batch is not None
            runner.batch.submit(sequence)
            async with closing(_delivered(queue, started, load_ns)) as chunks:
                async for chunk in chunks:
                    yield chunk
        finally:
            # No awaits (see _generate_alone): the scheduler drops a cancelled sequence at its
            # next step, and the slot is given back once it has.
            if sequence is not None and runner is not None and runner.batch is not None:
                runner.batch.cancel(sequence)
            else:
                left.set_result(None)
            self._release_after(
                left, runner, slots, request.keep_alive_s, request.keep_alive_extends
            )

    def _release_after(
        self,
        future: asyncio.Future[Any] | None,
        runner: Runner | None,
        slots: asyncio.Semaphore,
        keep_alive_s: float | None,
        extend_only: bool = False,
    ) -> None:
        """Return the runner and slot once the worker thread has let go of the context."""

        def release(_: object = None) -> None:
            if runner is not None:
                self._checkin(runner, keep_alive_s, extend_only=extend_only)
            slots.release()

        if future is None or future.done():
            release()
        else:
            future.add_done_callback(release)

    async def count_tokens(self, model_path: Path, texts: list[str]) -> list[int]:
        """Tokens in each text, with the model's own tokenizer (its vocabulary only: no
        weights are loaded for this)."""
        vocab = self._vocabs.get(model_path)
        if vocab is None:
            vocab = await self._run(
                lambda: Llama(model_path=str(model_path), vocab_only=True, verbose=False)
            )
            self._vocabs[model_path] = vocab
        counter = vocab

        def count() -> list[int]:
            return [len(counter.tokenize(t.encode(), add_bos=False, special=True)) for t in texts]

        counts: list[int] = await self._run(count)
        return counts

    async def _embedder(self, path: Path, n_ctx: int) -> Llama:
        current = self._embedders.get(path)
        if current is not None and current[1] >= n_ctx:
            return current[0]
        if current is not None:
            del self._embedders[path]
            await self._run(lambda: self._close(current[0]))
        llm: Llama = await self._run(lambda: self._open(path, n_ctx, embedding=True))
        self._embedders[path] = (llm, n_ctx)
        return llm

    async def embed(
        self,
        *,
        model_path: Path,
        model_name: str,
        inputs: list[str],
        truncate: bool,
        num_ctx: int,
        keep_alive_s: float | None,
    ) -> Embeddings:
        """Mean-pooled, L2-normalised embeddings, one per input."""
        started = time.perf_counter_ns()
        await self._embed_lock.acquire()
        future: asyncio.Future[tuple[list[list[float]], int]] | None = None
        try:
            load_start = time.perf_counter_ns()
            loaded_before = model_path in self._embedders
            llm = await self._embedder(model_path, num_ctx)
            load_ns = 0 if loaded_before else time.perf_counter_ns() - load_start
            future = asyncio.get_running_loop().run_in_executor(
                self._executor, lambda: embed_texts(llm, inputs, truncate, num_ctx)
            )
        finally:
            # The embedder stays taken until the worker thread is done with it, even when
            # this request is cancelled (its client gone): an unload waits for the lock.
            if future is None:
                self._embed_lock.release()
            else:
                future.add_done_callback(lambda _: self._embed_lock.release())
        vectors, count = await future
        return Embeddings(
            vectors=vectors,
            prompt_eval_count=count,
            total_duration=time.perf_counter_ns() - started,
            load_duration=load_ns,
        )

    async def aclose(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        for pool in self._runners.values():
            for runner in pool:
                if runner.batch is not None:
                    runner.batch.close()
                runner.llm.close()
        for llm, _ in self._embedders.values():
            llm.close()
        for vocab in self._vocabs.values():
            vocab.close()
        self._runners.clear()
        self._embedders.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)


def _deadline(request: Generation) -> float:
    """The ``time.monotonic()`` by which ``request`` must be done; 0 for none."""
    if request.deadline_s is None:
        return 0.0
    return time.monotonic() + max(0.0, request.deadline_s)


async def _delivered(
    queue: asyncio.Queue[Chunk | BaseException], started: int, load_ns: int
) -> AsyncIterator[Chunk]:
    """The chunks that a worker thread or the batch scheduler puts in ``queue``, up to the last
    one, which gets the load and total durations; an exception put there is raised here."""
    while True:
        item = await queue.get()
        if isinstance(item, BaseException):
            raise item
        if item.done:
            item.load_duration = load_ns
            item.total_duration = time.perf_counter_ns() - started
            yield item
            return
        yield item


class _Mailbox:
    """Callbacks for one event loop from the scheduler thread, run in one wake-up of the loop
    however many are posted before it runs: the four chunks of a four-sequence step cost the
    loop one wake-up (and llama.cpp's threads one interruption), not four."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._lock = threading.Lock()
        self._waiting: list[Callable[[], object]] = []

    def post(self, callback: Callable[[], object]) -> None:
        with self._lock:
            self._waiting.append(callback)
            if len(self._waiting) > 1:
                return  # a wake-up is already on its way
        _post(self.loop, self._run)

    def _run(self) -> None:
        with self._lock:
            waiting, self._waiting = self._waiting, []
        for callback in waiting:
            callback()


def _post(loop: asyncio.AbstractEventLoop, callback: Callable[[], object]) -> None:
    """Run ``callback`` on ``loop`` from another thread; nothing once the loop has closed."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback)
