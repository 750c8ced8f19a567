"""Conversations: durable, per-tenant chats whose replies come from the model.

The service validates and decides; the store persists; the inference service generates.

Rejected means not stored: a user's message is written only once every check has passed and
every limit has been taken (rate, quota, the key's parallel slot, a place in the engine's
queue), that is when the engine has produced the reply's first chunk, and always before the
client is answered with a 2xx. A streamed reply is acknowledged by its first line, so the
message is stored just before it goes out; the reply follows with its statistics when
generation ends, or, cut short after that (the client went away, the engine failed), with
what was generated, marked incomplete. A reply answered as one JSON body is acknowledged only
when whole, so the message and the reply are stored together in one transaction at the end,
and a request that fails before that leaves nothing behind.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import anyio

from billumy.auth import Principal
from billumy.catalog import ROLES
from billumy.context import (
    Assembled,
    ContextControl,
    Summariser,
    extractive_summary,
    summary_prompt,
)
from billumy.engines.base import Chunk, closing
from billumy.errors import BadRequestError, NotFoundError, PayloadTooLargeError
from billumy.inference import InferenceService, Prepared
from billumy.language import LANGUAGE_NAMES, guess_language
from billumy.store.base import Chat, ChatMessage, ChatPage, ChatStore, NewMessage

log = logging.getLogger(__name__)

SUMMARY_INPUT_CHARS = 4000  # about 1,000 tokens of turns in one summarisation prompt

_ID = re.compile(r"^[0-9a-f]{24}$")
TITLE_SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string", "minLength": 3, "maxLength": 60}},
    "required": ["title"],
}
_STAT_FIELDS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)


def new_chat_id() -> str:
    return secrets.token_hex(12)


def check_id(chat_id: str) -> str:
    if not _ID.match(chat_id):
        raise BadRequestError(f"invalid chat id {chat_id[:40]!r}")
    return chat_id


def encode_cursor(chat: Chat) -> str:
    raw = json.dumps({"t": chat.created_at.isoformat(), "id": chat.id}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> ChatPage:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        page = ChatPage(created_at=datetime.fromisoformat(data["t"]), id=check_id(data["id"]))
    except (binascii.Error, ValueError, KeyError, TypeError, BadRequestError):
        raise BadRequestError("invalid cursor") from None
    if page.created_at.tzinfo is None:
        raise BadRequestError("invalid cursor")
    return page


def stats_of(chunk: Chunk) -> dict[str, int]:
    return {name: int(getattr(chunk, name)) for name in _STAT_FIELDS}


@dataclass
class Turn:
    """One exchange in progress: who asked what, in which chat, with what context, and
    whether the answer is streamed (which decides when the question is stored)."""

    caller: Principal
    chat: Chat
    prepared: Prepared
    assembled: Assembled
    question: str
    streamed: bool


@dataclass
class Reply:
    """A reply being generated: what to stream, for which chat. Iterating ``chunks`` stores
    the exchange (see the module docstring)."""

    chat: Chat
    prepared: Prepared
    chunks: AsyncIterator[Chunk]


class ConversationService:
    def __init__(
        self,
        *,
        store: ChatStore,
        inference: InferenceService,
        context: ContextControl,
        max_message_chars: int,
    ) -> None:
        self.store = store
        self.inference = inference
        self.context = context
        self.summariser = Summariser(context.state)
        self.max_message_chars = max_message_chars

    async def aclose(self) -> None:
        await self.summariser.aclose()

    # --- chats -----------------------------------------------------------------------------

    def _messages(self, messages: Sequence[Mapping[str, str]]) -> list[NewMessage]:
        out = []
        for m in messages:
            if m["role"] not in ROLES:
                raise BadRequestError(
                    f"invalid message role {m['role']!r}: use system, user, assistant or tool"
                )
            out.append(NewMessage(role=m["role"], content=self._content(m["content"])))
        return out

    def _content(self, content: str) -> str:
        if len(content) > self.max_message_chars:
            raise PayloadTooLargeError(
                f"message too large: {len(content)} characters (limit {self.max_message_chars})"
            )
        return content

    async def create(
        self,
        *,
        tenant: str,
        user_id: str,
        model: str,
        title: str | None,
        messages: Sequence[Mapping[str, str]],
        tags: list[str],
        metadata: dict[str, Any],
    ) -> Chat:
        await self.inference.check_model(model, tenant=tenant)
        now = datetime.now(UTC)
        chat = Chat(
            id=new_chat_id(),
            tenant=tenant,
            user_id=user_id,
            model=model,
            title=title,
            tags=sorted(set(tags)),
            metadata=metadata,
            created_at=now,
            updated_at=now,
        )
        return await self.store.create_chat(chat, self._messages(messages))

    async def get(self, tenant: str, chat_id: str, *, with_messages: bool = True) -> Chat:
        chat = await self.store.get_chat(tenant, check_id(chat_id), with_messages=with_messages)
        if chat is None:
            raise NotFoundError("chat not found")
        return chat

    async def list(
        self,
        tenant: str,
        *,
        user_id: str | None,
        q: str | None,
        tag: str | None,
        archived: bool | None,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[Chat], str | None]:
        if not 1 <= limit <= 200:
            raise BadRequestError("limit must be between 1 and 200")
        after = decode_cursor(cursor) if cursor else None
        chats = await self.store.list_chats(
            tenant, user_id=user_id, q=q, tag=tag, archived=archived, limit=limit + 1, after=after
        )
        more = len(chats) > limit
        chats = chats[:limit]
        return chats, encode_cursor(chats[-1]) if more else None

    async def update(self, tenant: str, chat_id: str, changes: Mapping[str, Any]) -> Chat:
        if "tags" in changes and changes["tags"] is not None:
            changes = {**changes, "tags": sorted(set(changes["tags"]))}
        chat = await self.store.update_chat(tenant, check_id(chat_id), changes)
        if chat is None:
            raise NotFoundError("chat not found")
        return chat

    async def delete(self, tenant: str, chat_id: str) -> None:
        if not await self.store.delete_chat(tenant, check_id(chat_id)):
            raise NotFoundError("chat not found")
        await self.context.forget(chat_id)

    async def replace(
        self, tenant: str, chat_id: str, *, model: str | None, messages: Sequence[Mapping[str, str]]
    ) -> Chat:
        if model:
            await self.inference.check_model(model, tenant=tenant)
        new = self._messages(messages)
        if await self.store.replace_messages(tenant, check_id(chat_id), new, model=model) is None:
            raise NotFoundError("chat not found")
        await self.context.forget(chat_id)
        return await self.get(tenant, chat_id)

    # --- replies ---------------------------------------------------------------------------

    async def reply(
        self,
        caller: Principal,
        chat_id: str,
        content: str,
        *,
        options: Mapping[str, Any] | None = None,
        format: str | dict[str, Any] | None = None,
        keep_alive: str | float | None = None,
        stream: bool = True,
    ) -> Reply:
        """Check the user's message and start the model's reply over the conversation with
        it. Nothing is stored here: iterating the reply's chunks stores the message once the
        engine has taken the request (see the module docstring), so a request refused by any
        check or limit leaves no trace. ``stream``: whether the client reads the reply as it
        comes (a 2xx then goes out with the first chunk)."""
        tenant = caller.tenant
        if not content.strip():
            raise BadRequestError("content is required")
        content = self._content(content)
        chat = await self.get(tenant, chat_id, with_messages=False)
        entry, tier = await self.inference.resolve(chat.model, content, tenant=tenant)
        num_ctx, num_predict = self.inference.limits(self.inference.options(entry, options))
        # The message takes part in the context as the newest turn before it is stored.
        question = ChatMessage(
            id="",
            chat_id=chat.id,
            seq=chat.message_count + 1,
            role="user",
            content=content,
            created_at=datetime.now(UTC),
        )
        assembled = await self.context.assemble(
            tenant, chat, entry, num_ctx=num_ctx, num_predict=num_predict, pending=question
        )
        prepared = self.inference.prepare_messages(
            entry,
            assembled.messages,
            options=options,
            format=format,
            keep_alive=keep_alive,
            caller=caller,
            tier=tier,
        )
        turn = Turn(
            caller=caller,
            chat=chat,
            prepared=prepared,
            assembled=assembled,
            question=content,
            streamed=stream,
        )
        chunks = self._persisted(turn, self.inference.metered(prepared, caller))
        return Reply(chat=chat, prepared=prepared, chunks=chunks)

    async def context_of(
        self, caller: Principal, chat_id: str, options: Mapping[str, Any] | None
    ) -> Assembled:
        """What the next reply would send to the model (for operators and tests)."""
        chat = await self.get(caller.tenant, chat_id, with_messages=False)
        entry, _ = await self.inference.resolve(chat.model, "", tenant=caller.tenant)
        num_ctx, num_predict = self.inference.limits(self.inference.options(entry, options))
        return await self.context.assemble(
            caller.tenant, chat, entry, num_ctx=num_ctx, num_predict=num_predict
        )

    def _summarise_later(self, turn: Turn) -> None:
        upto = turn.assembled.unsummarised_upto
        if not upto:
            return
        caller, chat = turn.caller, turn.chat

        async def work() -> None:
            fresh = await self.store.get_chat(caller.tenant, chat.id)
            if fresh is None or fresh.summary_upto >= upto:
                return
            pending = [
                m
                for m in fresh.messages or []
                if fresh.summary_upto < m.seq <= upto and m.role != "system"
            ]
            summary = fresh.summary
            if pending:
                # One call per summary: the turns are clipped to fit it (their gist is what a
                # summary keeps), as a call per batch made long chats wait minutes for one.
                turns = _clipped(pending, SUMMARY_INPUT_CHARS)
                prepared = self.inference.prepare_messages(
                    turn.prepared.entry,
                    [{"role": "user", "content": summary_prompt(summary, turns)}],
                    options={"temperature": 0.2, "num_predict": 200},
                )
                text = "".join([c.text async for c in self.inference.metered(prepared, caller)])
                written = " ".join(text.split())
                if not written:
                    # A small model may answer nothing: keep the turns' gist rather than
                    # letting them fall out of the context without a trace.
                    log.info("empty summary from the model; kept an extractive one")
                    written = extractive_summary(summary, turns)
                summary = written
            if summary:
                await self.store.set_summary(caller.tenant, chat.id, summary, upto)

        self.summariser.schedule(chat.id, work)

    async def _persisted(self, turn: Turn, chunks: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
        """Pass chunks through, storing the exchange as the client is answered: the question
        before the first chunk of a streamed reply goes out, the reply before its final chunk
        (question and reply in one transaction when the client waits for the whole answer).
        A failure to store the question fails the request (503, or 404 if the chat was
        deleted meanwhile) before anything is acknowledged. A streamed reply cut short is
        stored with what there is, marked incomplete; a generation that never started
        (quota, parallel limit, queue full) stores nothing."""
        parts: list[str] = []
        asked = answered = False
        # Closed on every exit, at once: the generation stops and the key's parallel slot is
        # released even when storing fails or the client goes away.
        async with closing(chunks) as generation:
            try:
                async for chunk in generation:
                    parts.append(chunk.text)
                    if chunk.done:
                        answer = self._answer(turn, "".join(parts), chunk)
                        if asked:
                            await self._store_answer(turn, answer)
                        else:
                            await self._store(turn, [self._question(turn), answer])
                        asked = answered = True
                    elif turn.streamed and not asked:
                        await self._store(turn, [self._question(turn)])
                        asked = True
                    yield chunk
            finally:
                if asked and not answered:
                    # Shielded: this runs while the request is being cancelled (client gone).
                    with anyio.CancelScope(shield=True):
                        await self._store_answer(turn, self._answer(turn, "".join(parts), None))
                if asked:
                    # After the reply, so that summarising never delays it.
                    self._summarise_later(turn)

    @staticmethod
    def _question(turn: Turn) -> NewMessage:
        return NewMessage(role="user", content=turn.question)

    @staticmethod
    def _answer(turn: Turn, text: str, final: Chunk | None) -> NewMessage:
        return NewMessage(
            role="assistant",
            content=text,
            model=turn.prepared.entry.name,
            incomplete=final is None,
            done_reason=final.done_reason if final is not None else None,
            stats=stats_of(final) if final is not None else {},
        )

    async def _store(self, turn: Turn, messages: Sequence[NewMessage]) -> None:
        """Append ``messages`` or fail the request: nothing is acknowledged yet."""
        chat = turn.chat
        stored = await self.store.append_messages(turn.caller.tenant, chat.id, messages)
        if stored is None:
            raise NotFoundError("chat not found (it was deleted while the reply was starting)")
        await self.context.remember(chat.id, stored)

    async def _store_answer(self, turn: Turn, answer: NewMessage) -> None:
        """Append the reply to an acknowledged question; a failure is logged, as the client
        has its answer already (streamed)."""
        try:
            await self._store(turn, [answer])
        except Exception:
            # Deleted meanwhile, or the database went away: the reply was streamed already.
            log.exception("could not store the reply", extra={"chat_id": turn.chat.id})

    async def title(self, caller: Principal, chat_id: str) -> Chat:
        """Generate a short title from the first user message, in its language, and store it."""
        tenant = caller.tenant
        chat = await self.get(tenant, chat_id)
        first = next((m.content for m in chat.messages or [] if m.role == "user"), None)
        if not first:
            raise BadRequestError("the chat has no user message to make a title from")
        language = LANGUAGE_NAMES.get(guess_language(first) or "", "the same language as it")
        instruction = (
            f"Write a short title (at most six words) for a conversation that starts with the "
            f"message below. Write the title in {language}. Answer with JSON.\n\n"
            f"Message: {first[:2000]}"
        )
        entry, _ = await self.inference.resolve(chat.model, "", tenant=tenant)
        prepared = self.inference.prepare_messages(
            entry,
            [{"role": "user", "content": instruction}],
            options={"temperature": 0.2, "num_predict": 48},
            format=TITLE_SCHEMA,
        )
        text = "".join([c.text async for c in self.inference.metered(prepared, caller)])
        title = _parse_title(text) or _fallback_title(first)
        return await self.update(tenant, chat.id, {"title": title})


def _clipped(messages: list[ChatMessage], limit: int) -> list[ChatMessage]:
    """The turns with each one cut so that together they fit ``limit`` characters."""
    share = max(80, limit // max(len(messages), 1))
    return [replace(m, content=m.content[:share]) for m in messages][-max(1, limit // 80) :]


def _parse_title(text: str) -> str | None:
    try:
        title = json.loads(text).get("title", "")
    except (ValueError, AttributeError):
        return None
    title = " ".join(str(title).split()).strip(" .\"'")
    return title[:60] or None


def _fallback_title(message: str) -> str:
    words = message.split()
    title = " ".join(words[:6])
    return title[:60] + ("…" if len(words) > 6 else "")


def export_markdown(chat: Chat) -> str:
    lines = [f"# {chat.title or 'Untitled chat'}", ""]
    lines.append(f"- chat: `{chat.id}`  ")
    lines.append(f"- user: `{chat.user_id}`  ")
    lines.append(f"- model: `{chat.model}`  ")
    lines.append(f"- created: {chat.created_at.isoformat()}")
    if chat.tags:
        lines.append(f"- tags: {', '.join(chat.tags)}")
    for m in chat.messages or []:
        flag = " (incomplete)" if m.incomplete else ""
        lines += ["", f"## {m.role.capitalize()}{flag}", "", m.content]
    return "\n".join(lines) + "\n"
