"""Conversations: durable, per-tenant chats whose replies come from the model.

The service validates and decides; the store persists; the inference service generates.
A reply is stored with its statistics once generation ends; a reply cut short (the client
went away, the engine failed) is stored with what was generated and marked incomplete.
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
from billumy.engines.base import Chunk
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
    """One exchange in progress: who asked, in which chat, with what context."""

    caller: Principal
    chat: Chat
    prepared: Prepared
    assembled: Assembled


@dataclass
class Reply:
    """A reply being generated: what to stream, for which chat."""

    chat: Chat
    prepared: Prepared
    user_message: ChatMessage
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
        await self.inference.check_model(model)
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
            await self.inference.check_model(model)
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
    ) -> Reply:
        """Store the user's message, then start the model's reply over the conversation."""
        tenant = caller.tenant
        if not content.strip():
            raise BadRequestError("content is required")
        chat = await self.get(tenant, chat_id, with_messages=False)
        entry, tier = await self.inference.resolve(chat.model, content)
        # Validate options before anything is stored: a bad request leaves no trace.
        num_ctx, num_predict = self.inference.limits(self.inference.options(entry, options))
        stored = await self.store.append_messages(
            tenant, chat.id, [NewMessage(role="user", content=self._content(content))]
        )
        if stored is None:
            raise NotFoundError("chat not found")
        await self.context.remember(chat.id, stored)
        # The append's last seq is the chat's new message count: no second read needed.
        chat = replace(chat, message_count=stored[-1].seq)
        assembled = await self.context.assemble(
            tenant, chat, entry, num_ctx=num_ctx, num_predict=num_predict
        )
        prepared = self.inference.prepare_messages(
            entry,
            assembled.messages,
            options=options,
            format=format,
            keep_alive=keep_alive,
            tier=tier,
        )
        turn = Turn(caller=caller, chat=chat, prepared=prepared, assembled=assembled)
        chunks = self._persisted(turn, self.inference.metered(prepared, caller))
        return Reply(chat=chat, prepared=prepared, user_message=stored[0], chunks=chunks)

    async def context_of(
        self, caller: Principal, chat_id: str, options: Mapping[str, Any] | None
    ) -> Assembled:
        """What the next reply would send to the model (for operators and tests)."""
        chat = await self.get(caller.tenant, chat_id, with_messages=False)
        entry, _ = await self.inference.resolve(chat.model, "")
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
        """Pass chunks through; store the reply before the final chunk goes out, or store
        what there is, marked incomplete, when the stream ends early. A generation that
        never started (queue full, bad options) stores nothing."""
        parts: list[str] = []
        started = stored = False
        try:
            async for chunk in chunks:
                started = True
                parts.append(chunk.text)
                if chunk.done:
                    await self._store_reply(turn, "".join(parts), chunk)
                    stored = True
                yield chunk
        finally:
            if started and not stored:
                # Shielded: this runs while the request is being cancelled (client gone).
                with anyio.CancelScope(shield=True):
                    await self._store_reply(turn, "".join(parts), None)
            if started:
                # After the reply, so that summarising never delays it.
                self._summarise_later(turn)

    async def _store_reply(self, turn: Turn, text: str, final: Chunk | None) -> None:
        chat = turn.chat
        message = NewMessage(
            role="assistant",
            content=text,
            model=turn.prepared.entry.name,
            incomplete=final is None,
            done_reason=final.done_reason if final is not None else None,
            stats=stats_of(final) if final is not None else {},
        )
        try:
            stored = await self.store.append_messages(turn.caller.tenant, chat.id, [message])
            if stored:
                await self.context.remember(chat.id, stored)
        except Exception:
            # Deleted meanwhile, or the database went away: the reply was streamed already.
            log.exception("could not store the reply", extra={"chat_id": chat.id})

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
        entry, _ = await self.inference.resolve(chat.model, "")
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
