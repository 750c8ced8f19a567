"""The engine process's frames: what crosses the boundary comes back the same."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from billumy import errors
from billumy.engines import wire
from billumy.engines.base import Chunk, Generation, LoadedModel, Sampling
from billumy.gotemplate import TemplateError


def test_a_generation_survives_the_trip() -> None:
    request = Generation(
        model_path=Path("/models/x.gguf"),
        model_name="billumy",
        prompt="Olá",
        messages=[{"role": "user", "content": "Quanto vendemos?"}],
        format={"type": "object", "properties": {"a": {"type": "integer"}}},
        sampling=Sampling(temperature=0.2, seed=7, stop=["\n\n"]),
        keep_alive_s=-1,
        truncate=True,
        keep_messages=2,
    )
    back = wire.generation_from_wire(wire.generation_to_wire(request))
    assert back == request


def test_a_token_chunk_is_a_few_bytes_and_the_last_keeps_its_statistics() -> None:
    token = wire.chunk_to_wire(Chunk(text="ab"))
    assert token == {"text": "ab"}
    assert len(wire.encode({"id": 12, "chunk": token})) < 40
    last = Chunk(done=True, done_reason="stop", context=[1, 2], eval_count=2, eval_duration=9)
    assert wire.chunk_from_wire(wire.chunk_to_wire(last)) == last


def test_loaded_models_survive_the_trip() -> None:
    model = LoadedModel("billumy", Path("/m.gguf"), 10, datetime.now(UTC), 2048)
    assert wire.loaded_from_wire(wire.loaded_to_wire(model)) == model


@pytest.mark.parametrize(
    ("error", "kind", "status"),
    [
        (errors.BadRequestError("bad format"), errors.BadRequestError, 400),
        (TemplateError("unclosed action"), errors.BadRequestError, 400),
        (errors.OverloadedError("queue full", retry_after=3), errors.OverloadedError, 503),
        (errors.EngineError("llama_decode returned -1"), errors.EngineError, 500),
        (RuntimeError("boom"), errors.EngineError, 500),
    ],
)
def test_errors_keep_their_status(error: Exception, kind: type, status: int) -> None:
    back = wire.error_from_wire(wire.error_to_wire(error))
    assert type(back) is kind and back.status_code == status
    assert str(error) in back.message
    if isinstance(error, errors.OverloadedError):
        assert back.headers["Retry-After"] == "3"


def test_frames_are_read_back_and_garbage_is_refused() -> None:
    async def read(data: bytes) -> dict[str, object] | None:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await wire.read_frame(reader)

    assert asyncio.run(read(wire.encode({"id": 1, "op": "ping"}))) == {"id": 1, "op": "ping"}
    assert asyncio.run(read(b"")) is None
    with pytest.raises(wire.FrameError):
        asyncio.run(read(b"\x00\x00"))
    with pytest.raises(wire.FrameError):
        asyncio.run(read(wire.HEADER.pack(wire.MAX_FRAME + 1)))
    with pytest.raises(wire.FrameError):
        asyncio.run(read(wire.encode({"id": 1})[:-1]))
    with pytest.raises(wire.FrameError):
        asyncio.run(read(wire.HEADER.pack(2) + b"[]"))
