"""The embedded engine as a :class:`~billumy.engines.base.Backend`.

One instance per embedded deployment (bound to its GGUF and its timeout), and one for the
catalog's models without deployments (each request's own model, the engine timeout). The engine
process is the app's and outlives them: closing a backend closes nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

from billumy.engines.base import Chunk, Embedding, Embeddings, Engine, Generation


class EmbeddedBackend:
    """The engine process's models, through ``engine``."""

    remote = False

    def __init__(
        self,
        engine: Engine,
        *,
        name: str,
        model_path: Path | None = None,
        deadline_s: float | None = None,
    ) -> None:
        self.engine = engine
        self.name = name
        self.model_path = model_path  # None: the model each request names
        self.deadline_s = deadline_s

    def _path(self, requested: Path) -> Path:
        return self.model_path if self.model_path is not None else requested

    def generate(self, request: Generation) -> AsyncIterator[Chunk]:
        return self.engine.generate(
            replace(request, model_path=self._path(request.model_path), deadline_s=self.deadline_s)
        )

    async def embed(self, request: Embedding) -> Embeddings:
        return await self.engine.embed(
            model_path=self._path(request.model_path),
            model_name=request.model_name,
            inputs=request.inputs,
            truncate=request.truncate,
            num_ctx=request.num_ctx,
            keep_alive_s=request.keep_alive_s,
        )

    async def load(self, request: Generation) -> int:
        return await self.engine.load(
            self._path(request.model_path),
            request.model_name,
            request.num_ctx,
            request.keep_alive_s,
            extend_only=request.keep_alive_extends,
        )

    async def unload(self, request: Generation) -> None:
        await self.engine.unload(self._path(request.model_path))

    async def health(self) -> None:
        """Always: the supervisor restarts a crashed engine process, and a request meanwhile
        fails on its own (EngineUnavailableError), without opening a circuit."""

    async def aclose(self) -> None:
        """Nothing: the engine is the app's."""
