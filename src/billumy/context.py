"""Context control for conversations: what of a long chat the model gets to see.

The prompt must fit ``num_ctx`` minus room for the reply. It is built from the persona, a
running summary of older turns, and as many recent turns as fit, counted with the model's own
tokenizer. Turns that no longer fit are folded into the summary by the model, in the
background, and the summary is stored with the chat. The newest turns are kept in the shared
state (Redis when configured), so any process can assemble a context without reading the
whole history back from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from billumy.cache.base import SharedState, StateUnavailableError
from billumy.catalog import ModelEntry
from billumy.language import LANGUAGE_NAMES, guess_language
from billumy.store.base import Chat, ChatMessage, ChatStore

log = logging.getLogger(__name__)

PER_MESSAGE_TOKENS = 8  # what a chat template adds around each message
SUMMARY_HEADER = "Summary of the earlier conversation:"
_WINDOW_TTL_S = 24 * 3600.0


@dataclass
class Assembled:
    """The messages for the next reply and how they were chosen."""

    messages: list[dict[str, str]]
    summary: str | None
    first_seq: int  # oldest turn sent verbatim (0 when there is none)
    unsummarised_upto: int  # newest turn left out and not yet in the summary (0: none)
    tokens: int  # estimated prompt tokens, persona and template included
    budget: int  # the most the prompt may take


def _turn(m: ChatMessage) -> dict[str, str]:
    return {"role": m.role, "content": m.content}


class ContextControl:
    """Assembles conversation contexts and keeps their summaries and hot windows."""

    def __init__(
        self,
        *,
        store: ChatStore,
        state: SharedState,
        count_tokens: Callable[[ModelEntry, list[str]], Awaitable[list[int]]],
        window: int = 64,
    ) -> None:
        self.store = store
        self.state = state
        self.count_tokens = count_tokens
        self.window = window

    # --- hot window ------------------------------------------------------------------------

    async def remember(self, chat_id: str, messages: Sequence[ChatMessage]) -> None:
        """Add newly stored messages to the chat's hot window."""
        items = [
            orjson.dumps({"seq": m.seq, "role": m.role, "content": m.content, "id": m.id})
            for m in messages
        ]
        with contextlib.suppress(StateUnavailableError):
            await self.state.push_window(f"win:{chat_id}", items, self.window, _WINDOW_TTL_S)

    async def forget(self, chat_id: str) -> None:
        with contextlib.suppress(StateUnavailableError):
            await self.state.delete(f"win:{chat_id}")

    async def recent(self, tenant: str, chat: Chat) -> list[ChatMessage]:
        """The newest messages: at least all those not in the summary, or a full window.

        Served from the hot window when it is complete up to ``chat.message_count``; otherwise
        read from the store once and the window refilled."""
        try:
            raw = await self.state.read_window(f"win:{chat.id}")
        except StateUnavailableError:
            raw = []
        window = [_from_window(chat.id, orjson.loads(item)) for item in raw]
        # Usable when it is current and reaches back far enough: to the first message, to
        # what the summary covers, or as far as a window ever holds.
        reaches = bool(window) and (
            window[0].seq <= chat.summary_upto + 1 or len(window) >= self.window
        )
        if reaches and window[-1].seq == chat.message_count and _contiguous(window):
            return window
        full = await self.store.get_chat(tenant, chat.id)
        messages = (full.messages or []) if full is not None else []
        await self.forget(chat.id)
        await self.remember(chat.id, messages[-self.window :])
        return messages

    # --- assembly --------------------------------------------------------------------------

    async def assemble(
        self,
        tenant: str,
        chat: Chat,
        entry: ModelEntry,
        *,
        num_ctx: int,
        num_predict: int,
        pending: ChatMessage | None = None,
    ) -> Assembled:
        """Persona + summary + the newest turns that fit ``num_ctx`` minus room for a reply.
        ``pending``: a message not stored yet (the one being answered) taken as the newest
        turn, so that it is written only once the request has been admitted."""
        recent = await self.recent(tenant, chat)
        if pending is not None:
            recent = [*recent, pending]
        reply_room = min(num_predict, num_ctx // 4)
        budget = num_ctx - reply_room
        summary = chat.summary if chat.summary_upto > 0 else None
        fixed = [entry.system or "", *(m["content"] for m in entry.messages)]
        if summary:
            fixed.append(f"{SUMMARY_HEADER}\n{summary}")
        pinned = [m for m in recent if m.role == "system"]
        turns = [m for m in recent if m.role != "system" and m.seq > chat.summary_upto]
        counts = await self.count_tokens(
            entry, [*fixed, *(m.content for m in pinned), *(m.content for m in turns)]
        )
        used = sum(counts[: len(fixed) + len(pinned)])
        used += PER_MESSAGE_TOKENS * (len(fixed) + len(pinned))
        turn_counts = counts[len(fixed) + len(pinned) :]
        chosen: list[ChatMessage] = []
        for message, tokens in zip(reversed(turns), reversed(turn_counts), strict=True):
            cost = tokens + PER_MESSAGE_TOKENS
            if chosen and used + cost > budget:
                break
            chosen.append(message)
            used += cost
        chosen.reverse()
        first_seq = chosen[0].seq if chosen else 0
        # Everything before the oldest turn sent is left out: what did not fit, and what is
        # older than the window when only the window was read.
        dropped_upto = first_seq - 1 if first_seq else 0
        messages = [_turn(m) for m in pinned]
        if summary:
            messages.insert(0, {"role": "system", "content": f"{SUMMARY_HEADER}\n{summary}"})
        messages += [_turn(m) for m in chosen]
        return Assembled(
            messages=messages,
            summary=summary,
            first_seq=first_seq,
            unsummarised_upto=dropped_upto if dropped_upto > chat.summary_upto else 0,
            tokens=used,
            budget=budget,
        )


def _from_window(chat_id: str, item: dict[str, Any]) -> ChatMessage:
    from datetime import UTC, datetime

    return ChatMessage(
        id=str(item.get("id", "")),
        chat_id=chat_id,
        seq=int(item["seq"]),
        role=str(item["role"]),
        content=str(item["content"]),
        created_at=datetime.now(UTC),
    )


def _contiguous(messages: list[ChatMessage]) -> bool:
    return all(b.seq == a.seq + 1 for a, b in itertools.pairwise(messages))


def summary_prompt(previous: str | None, turns: Sequence[ChatMessage]) -> str:
    """The instruction that folds ``turns`` into the running summary."""
    text = "\n".join(f"{m.role.capitalize()}: {m.content}" for m in turns)
    language = LANGUAGE_NAMES.get(guess_language(text) or "", "the language of the conversation")
    parts = [
        "Summarise this conversation in at most 120 words, in "
        f"{language}. Keep names, numbers, facts and decisions. Answer with the summary only.",
    ]
    if previous:
        parts.append(f"Summary so far:\n{previous}")
    parts.append(f"Conversation:\n{text}")
    return "\n\n".join(parts)


def extractive_summary(previous: str | None, turns: Sequence[ChatMessage], limit: int = 800) -> str:
    """A summary without a model: the previous one, then the start of each turn."""
    pieces = [previous] if previous else []
    share = max(60, limit // max(len(turns), 1))
    for m in turns:
        text = " ".join(m.content.split())
        pieces.append(f"{m.role}: {text[:share]}{'…' if len(text) > share else ''}")
    joined = " | ".join(pieces)
    return joined if len(joined) <= limit else joined[-limit:]


class Summariser:
    """Runs one background summarisation per chat at a time (across processes)."""

    def __init__(self, state: SharedState) -> None:
        self.state = state
        self._tasks: set[asyncio.Task[None]] = set()

    def schedule(self, chat_id: str, work: Callable[[], Awaitable[None]]) -> None:
        async def run() -> None:
            holder = secrets.token_hex(8)
            try:
                if not await self.state.acquire_slot(f"sum:{chat_id}", holder, 1, 300.0):
                    return  # another process is summarising this chat
            except StateUnavailableError:
                return
            try:
                await work()
            except Exception:
                log.warning("summarising a conversation failed", exc_info=True)
            finally:
                with contextlib.suppress(StateUnavailableError):
                    await self.state.release_slot(f"sum:{chat_id}", holder)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for running summaries (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
