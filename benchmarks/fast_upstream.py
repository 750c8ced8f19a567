"""An instant fake model server that speaks just enough of the Ollama and OpenAI wire formats.

It answers every generation at once with fixed text: ``tok0 tok1 ... tok{N-1} `` where N is
``FAST_UPSTREAM_CHUNKS`` (default 16). Streamed answers send one piece per token, then a
final line (Ollama: ``"done": true`` with statistics; OpenAI: ``finish_reason`` "stop", a usage
chunk when ``stream_options.include_usage`` is set, then ``data: [DONE]``). Nothing is
computed, so timing a proxy in front of it measures the proxy.

Routes::

    POST /api/chat, /api/generate       Ollama (NDJSON when "stream" is true, the default)
    GET  /api/version, /api/ps, /api/tags, /
    POST /api/show
    POST /v1/chat/completions           OpenAI (SSE when "stream" is true)
    GET  /v1/models
    GET  /_stats, POST /_stats/reset   generations served and the client ports they came from
                                        (one port per connection: shows keep-alive reuse)

Run it alone (one worker process, uvloop and httptools)::

    .venv/bin/python benchmarks/fast_upstream.py --port 11500 --chunks 16

or import ``create_app`` and serve it yourself.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

DEFAULT_CHUNKS = 16
PROMPT_TOKENS = 8  # reported as prompt_eval_count / prompt_tokens for every request
NDJSON = "application/x-ndjson"
SSE = "text/event-stream"


def pieces(chunks: int) -> list[str]:
    """The text pieces every answer is made of, in order."""
    return [f"tok{i} " for i in range(chunks)]


def _json(payload: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status_code, media_type="application/json")


def _timestamp() -> str:
    now = time.time()
    whole = int(now)
    second = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{second}.{int((now - whole) * 1_000_000):06d}Z"


def _ollama_stats(chunks: int, started: int) -> dict[str, Any]:
    total = max(time.perf_counter_ns() - started, 1)
    return {
        "done_reason": "stop",
        "total_duration": total,
        "load_duration": 0,
        "prompt_eval_count": PROMPT_TOKENS,
        "prompt_eval_duration": total // 4,
        "eval_count": chunks,
        "eval_duration": total // 2,
    }


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def create_app(chunks: int | None = None) -> Starlette:
    """The app; ``chunks`` defaults to ``FAST_UPSTREAM_CHUNKS`` (16 when unset)."""
    count = chunks if chunks is not None else int(os.environ.get("FAST_UPSTREAM_CHUNKS", "0") or 0)
    count = count if count > 0 else DEFAULT_CHUNKS
    texts = pieces(count)
    whole = "".join(texts)
    served = 0
    ports: set[int] = set()

    def seen(request: Request) -> None:
        nonlocal served
        served += 1
        if request.client is not None:
            ports.add(request.client.port)

    # --- Ollama ----------------------------------------------------------------------------

    async def ollama(request: Request, field: str) -> Response:
        seen(request)
        body = await _body(request)
        started = time.perf_counter_ns()
        model = str(body.get("model") or "fast")

        def piece(text: str) -> dict[str, Any]:
            if field == "message":
                return {
                    "model": model,
                    "created_at": _timestamp(),
                    "message": {"role": "assistant", "content": text},
                    "done": False,
                }
            return {"model": model, "created_at": _timestamp(), "response": text, "done": False}

        if body.get("stream", True) is False:
            out = piece(whole)
            out["done"] = True
            out.update(_ollama_stats(count, started))
            return _json(out)

        async def lines() -> AsyncIterator[bytes]:
            for text in texts:
                yield orjson.dumps(piece(text)) + b"\n"
            last = piece("")
            last["done"] = True
            last.update(_ollama_stats(count, started))
            yield orjson.dumps(last) + b"\n"

        return StreamingResponse(lines(), media_type=NDJSON)

    async def chat(request: Request) -> Response:
        return await ollama(request, "message")

    async def generate(request: Request) -> Response:
        return await ollama(request, "response")

    async def version(request: Request) -> Response:
        return _json({"version": "0.0.0"})

    async def no_models(request: Request) -> Response:
        return _json({"models": []})

    async def show(request: Request) -> Response:
        body = await _body(request)
        return _json(
            {
                "modelfile": f"FROM {body.get('model') or body.get('name') or 'fast'}",
                "parameters": "",
                "template": "{{ .Prompt }}",
                "details": {"format": "gguf", "family": "fast", "parameter_size": "0"},
                "model_info": {"general.architecture": "fast", "fast.context_length": 8192},
                "capabilities": ["completion"],
            }
        )

    async def root(request: Request) -> Response:
        return Response("Ollama is running", media_type="text/plain")

    # --- OpenAI ----------------------------------------------------------------------------

    async def completions(request: Request) -> Response:
        seen(request)
        body = await _body(request)
        model = str(body.get("model") or "fast")
        ident = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        usage = {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": count,
            "total_tokens": PROMPT_TOKENS + count,
        }
        if not body.get("stream", False):
            return _json(
                {
                    "id": ident,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": whole},
                            "finish_reason": "stop",
                            "logprobs": None,
                        }
                    ],
                    "usage": usage,
                }
            )
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))

        def event(delta: dict[str, Any], finish: str | None) -> bytes:
            chunk: dict[str, Any] = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            if include_usage:
                chunk["usage"] = None
            return b"data: " + orjson.dumps(chunk) + b"\n\n"

        async def events() -> AsyncIterator[bytes]:
            for i, text in enumerate(texts):
                delta = {"role": "assistant", "content": text} if i == 0 else {"content": text}
                yield event(delta, None)
            yield event({}, "stop")
            if include_usage:
                last = {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }
                yield b"data: " + orjson.dumps(last) + b"\n\n"
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type=SSE)

    async def models(request: Request) -> Response:
        return _json(
            {
                "object": "list",
                "data": [{"id": "fast", "object": "model", "created": 0, "owned_by": "bench"}],
            }
        )

    async def stats(request: Request) -> Response:
        return _json({"requests": served, "client_ports": sorted(ports)})

    async def reset(request: Request) -> Response:
        nonlocal served
        served = 0
        ports.clear()
        return _json({"requests": 0, "client_ports": []})

    return Starlette(
        routes=[
            Route("/", root, methods=["GET", "HEAD"]),
            Route("/api/chat", chat, methods=["POST"]),
            Route("/api/generate", generate, methods=["POST"]),
            Route("/api/version", version, methods=["GET"]),
            Route("/api/ps", no_models, methods=["GET"]),
            Route("/api/tags", no_models, methods=["GET"]),
            Route("/api/show", show, methods=["POST"]),
            Route("/v1/chat/completions", completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/_stats", stats, methods=["GET"]),
            Route("/_stats/reset", reset, methods=["POST"]),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=11500, help="port to listen on (11500)")
    parser.add_argument(
        "--chunks",
        type=int,
        default=None,
        help=f"pieces per answer (default: $FAST_UPSTREAM_CHUNKS or {DEFAULT_CHUNKS})",
    )
    args = parser.parse_args(argv)
    if args.chunks is not None and args.chunks < 1:
        parser.error("--chunks must be at least 1")
    uvicorn.run(
        create_app(args.chunks),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        workers=1,
        log_level="warning",
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
