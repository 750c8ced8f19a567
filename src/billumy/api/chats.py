"""The chats API, plus the original service's routes so existing Django clients keep working."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import PlainTextResponse, Response

from billumy.api.deps import (
    ChatBody,
    InferenceDep,
    InferenceKey,
    KeyFirstRoute,
    ServicesDep,
    body_of,
    refuse_nul,
    services_of,
)
from billumy.api.docs import MODEL_ERRORS, answers, request_body
from billumy.api.ollama import chat_chunk, serve_chat
from billumy.api.responses import JSON
from billumy.api.streaming import NDJSON, ndjson_response, prime, unless_disconnected
from billumy.conversations import ConversationService, export_markdown
from billumy.engines.base import Chunk, closing
from billumy.errors import BadRequestError
from billumy.schemas.chats import CreateChat, LegacyUpdate, PostMessage, TitleBody, UpdateChat
from billumy.schemas.responses import (
    ChatContext,
    ChatOut,
    ChatPage,
    ChatReplyResponse,
    ChatTitle,
)
from billumy.store.base import Chat, ChatMessage

router = APIRouter(prefix="/chats", tags=["chats"], route_class=KeyFirstRoute)


async def _conversations(services: ServicesDep) -> ConversationService:
    return services.conversations


Conversations = Annotated[ConversationService, Depends(_conversations)]


def _iso(value: Any) -> str:
    return str(value.isoformat()).replace("+00:00", "Z")


def message_json(m: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": m.id,
        "seq": m.seq,
        "role": m.role,
        "content": m.content,
        "created_at": _iso(m.created_at),
        "incomplete": m.incomplete,
    }
    if m.model:
        out["model"] = m.model
    if m.done_reason:
        out["done_reason"] = m.done_reason
    out.update(m.stats)
    return out


def chat_json(chat: Chat) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": chat.id,
        "user_id": chat.user_id,
        "title": chat.title,
        "model": chat.model,
        "tags": chat.tags,
        "metadata": chat.metadata,
        "archived": chat.archived,
        "message_count": chat.message_count,
        "created_at": _iso(chat.created_at),
        "updated_at": _iso(chat.updated_at),
    }
    if chat.messages is not None:
        out["messages"] = [message_json(m) for m in chat.messages]
    return out


@router.post(
    "",
    status_code=201,
    responses=answers(ChatOut, status=201, description="Created.", errors=(404,)),
)
async def create_chat(
    body: Annotated[CreateChat, Depends(body_of(CreateChat))],
    chats: Conversations,
    key: InferenceKey,
) -> Response:
    chat = await chats.create(
        tenant=key.tenant,
        user_id=body.user_id,
        model=body.model,
        title=body.title,
        messages=[m.model_dump() for m in body.messages],
        tags=body.tags,
        metadata=body.metadata,
    )
    return JSON(chat_json(chat), status_code=201)


@router.get("", responses=answers(ChatPage))
async def list_chats(
    chats: Conversations,
    key: InferenceKey,
    user_id: str | None = None,
    q: Annotated[str | None, Query(max_length=500)] = None,
    tag: str | None = None,
    archived: bool | None = None,
    limit: int = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    refuse_nul(user_id, tag, cursor)
    page, next_cursor = await chats.list(
        key.tenant,
        user_id=user_id,
        q=q,
        tag=tag,
        archived=archived,
        limit=limit,
        cursor=cursor,
    )
    return JSON({"chats": [chat_json(c) for c in page], "next_cursor": next_cursor})


# Registered before /{chat_id} routes so that "chat" is not taken for an id.
@router.post(
    "/chat/stream", responses=answers(stream=NDJSON, description="Streamed", errors=MODEL_ERRORS)
)
async def legacy_chat_stream(
    request: Request, body: ChatBody, service: InferenceDep, key: InferenceKey
) -> Response:
    """The original service's streaming chat: the body of /api/chat, always streamed."""
    body.stream = True
    return await serve_chat(request, body, service, key)


@router.get("/{chat_id}", responses=answers(ChatOut, errors=(404,)))
async def get_chat(chat_id: str, chats: Conversations, key: InferenceKey) -> Response:
    return JSON(chat_json(await chats.get(key.tenant, chat_id)))


@router.patch("/{chat_id}", responses=answers(ChatOut, errors=(404,)))
async def update_chat(
    chat_id: str,
    body: Annotated[UpdateChat, Depends(body_of(UpdateChat))],
    chats: Conversations,
    key: InferenceKey,
) -> Response:
    changes = {k: getattr(body, k) for k in body.model_fields_set}
    for name in ("tags", "metadata", "archived"):
        if name in changes and changes[name] is None:
            raise BadRequestError(f"{name} cannot be null")
    if not changes:
        raise BadRequestError("nothing to update: send title, tags, metadata or archived")
    return JSON(chat_json(await chats.update(key.tenant, chat_id, changes)))


@router.delete(
    "/{chat_id}",
    status_code=204,
    responses=answers(status=204, description="Deleted.", errors=(404,)),
)
async def delete_chat(chat_id: str, chats: Conversations, key: InferenceKey) -> Response:
    await chats.delete(key.tenant, chat_id)
    return Response(status_code=204)


@router.post(
    "/{chat_id}/messages",
    responses=answers(ChatReplyResponse, stream=NDJSON, errors=MODEL_ERRORS),
)
async def post_message(
    request: Request,
    chat_id: str,
    body: Annotated[PostMessage, Depends(body_of(PostMessage))],
    chats: Conversations,
    key: InferenceKey,
) -> Response:
    """Append the user's message and answer it, streamed (NDJSON as /api/chat) or as JSON."""
    reply = await chats.reply(
        key,
        chat_id,
        body.content,
        options=body.options,
        format=body.format,
        keep_alive=body.keep_alive,
        stream=body.stream,
    )
    model = reply.chat.model

    def render(chunk: Chunk, text: str | None = None) -> dict[str, Any]:
        out = chat_chunk(model, chunk, text)
        if chunk.done:
            out["chat_id"] = reply.chat.id
        return out

    if body.stream:
        first, rest = await unless_disconnected(request, prime(reply.chunks))
        headers = reply.prepared.headers()
        drain = services_of(request).drain
        return ndjson_response(first, rest, render, lambda c: c.done, headers=headers, drain=drain)

    async def whole() -> dict[str, Any]:
        parts: list[str] = []
        last: Chunk | None = None
        # Closed at once if the client goes away: the generation and its slot end with it.
        async with closing(reply.chunks) as chunks:
            async for chunk in chunks:
                parts.append(chunk.text)
                last = chunk
        assert last is not None
        return render(last, "".join(parts))

    body_out = await unless_disconnected(request, whole())
    return JSON(body_out, headers=reply.prepared.headers())


@router.get("/{chat_id}/context", responses=answers(ChatContext, errors=MODEL_ERRORS))
async def get_context(
    chat_id: str,
    chats: Conversations,
    key: InferenceKey,
    num_ctx: int | None = None,
    num_predict: int | None = None,
) -> Response:
    """What the next reply would send to the model: the summary of older turns and the newest
    turns that fit, with the token estimate and budget (for these options)."""
    options = {k: v for k, v in {"num_ctx": num_ctx, "num_predict": num_predict}.items() if v}
    assembled = await chats.context_of(key, chat_id, options)
    return JSON(
        {
            "messages": assembled.messages,
            "summary": assembled.summary,
            "first_seq": assembled.first_seq,
            "tokens": assembled.tokens,
            "budget": assembled.budget,
        }
    )


@router.post("/{chat_id}/title", responses=answers(ChatTitle, errors=MODEL_ERRORS))
async def generate_title(chat_id: str, chats: Conversations, key: InferenceKey) -> Response:
    chat = await chats.title(key, chat_id)
    return JSON({"id": chat.id, "title": chat.title})


@router.patch(
    "/{chat_id}/title",
    responses=answers(ChatTitle, errors=MODEL_ERRORS),
    openapi_extra=request_body({"application/json": TitleBody}, required=False),
)
async def legacy_title(
    request: Request, chat_id: str, chats: Conversations, key: InferenceKey
) -> Response:
    """The original service's route: sets ``{"title": ...}`` if given, else generates one."""
    raw = await request.body()
    body = await body_of(TitleBody)(request) if raw.strip() else TitleBody()
    if body.title and body.title.strip():
        chat = await chats.update(key.tenant, chat_id, {"title": body.title.strip()})
    else:
        chat = await chats.title(key, chat_id)
    return JSON({"id": chat.id, "title": chat.title})


@router.put("/{chat_id}/update", responses=answers(ChatOut, errors=(404,)))
async def legacy_update(
    chat_id: str,
    body: Annotated[LegacyUpdate, Depends(body_of(LegacyUpdate))],
    chats: Conversations,
    key: InferenceKey,
) -> Response:
    """The original service's route: replace the chat's model and messages."""
    chat = await chats.replace(
        key.tenant,
        chat_id,
        model=body.data.model,
        messages=[m.model_dump() for m in body.data.messages],
    )
    return JSON(chat_json(chat))


@router.get("/{chat_id}/export", responses=answers(ChatOut, media="text/markdown", errors=(404,)))
async def export_chat(
    chat_id: str,
    chats: Conversations,
    key: InferenceKey,
    format: str = "json",
) -> Response:
    chat = await chats.get(key.tenant, chat_id)
    if format == "json":
        return JSON(
            chat_json(chat),
            headers={"Content-Disposition": f'attachment; filename="chat-{chat.id}.json"'},
        )
    if format in ("markdown", "md"):
        return PlainTextResponse(
            export_markdown(chat),
            media_type="text/markdown; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="chat-{chat.id}.md"'},
        )
    raise BadRequestError("format must be json or markdown")
