"""Turning sampled tokens into text: incremental UTF-8 and stop sequences."""

from __future__ import annotations

import codecs


class TextAssembler:
    """Feeds token bytes in, gets safe-to-send text out.

    Text that could still become a stop sequence is held back until it cannot; multi-byte
    characters split across tokens are held until complete.
    """

    def __init__(self, stop: list[str]) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = [s for s in stop if s]
        self._held = ""
        self.stopped = False

    def feed(self, piece: bytes) -> str:
        """Add a token's bytes; return the text that is now safe to emit."""
        if self.stopped:
            return ""
        self._held += self._decoder.decode(piece)
        if not self._stop:
            out, self._held = self._held, ""
            return out
        # The earliest stop in the text wins, whatever its order in the list.
        hits = [i for i in (self._held.find(stop) for stop in self._stop) if i != -1]
        if hits:
            self.stopped = True
            out, self._held = self._held[: min(hits)], ""
            return out
        keep = self._longest_stop_prefix_suffix()
        cut = len(self._held) - keep
        out, self._held = self._held[:cut], self._held[cut:]
        return out

    def flush(self) -> str:
        """The text still held back, once generation has ended without a stop sequence."""
        if self.stopped:
            return ""
        out = self._held + self._decoder.decode(b"", final=True)
        self._held = ""
        return out

    def _longest_stop_prefix_suffix(self) -> int:
        best = 0
        for stop in self._stop:
            for size in range(min(len(stop) - 1, len(self._held)), best, -1):
                if self._held.endswith(stop[:size]):
                    best = size
                    break
        return best
