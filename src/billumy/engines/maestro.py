"""Maestro tiers: a model name that routes each question to a model sized for it.

The original system asked a small model whether a question was simple, medium or deep and
chose a model size from the answer. Here the classifier's output is constrained by a JSON
schema, decisions are cached in the shared state (so every process agrees and pays once), and
a rule-based fallback decides when the classifier is slow, fails, or is unsure.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from billumy.cache.base import SharedState, StateUnavailableError
from billumy.catalog import normalize_name
from billumy.errors import BillumyError
from billumy.settings import TierConfig

log = logging.getLogger(__name__)

Tier = Literal["simple", "medium", "deep"]
TIERS: tuple[Tier, ...] = ("simple", "medium", "deep")
Source = Literal["classifier", "rules", "cache"]

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "tier": {"type": "string", "enum": list(TIERS)},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["tier", "confidence"],
}

CLASSIFIER_SYSTEM = (
    "Classify how much reasoning the user's question needs. Answer with JSON only: "
    '{"tier": "simple" | "medium" | "deep", "confidence": 0..1}. '
    "simple: greetings, thanks, small talk, one short fact. "
    "medium: an ordinary question or explanation. "
    "deep: analysis of data, comparisons, causes, trends, forecasts, plans or strategy."
)

# A classifier: (classifier model, question) -> raw JSON text.
Classify = Callable[[str, str], Awaitable[str]]

_DEEP = re.compile(
    r"\b(why|por ?que|analy[sz]\w*|anali[sz]\w*|compar\w*|trend\w*|tendenc\w*|forecast\w*|"
    r"previs\w*|projec\w*|strateg\w*|estrateg\w*|recommend\w*|recomend\w*|correlat\w*|"
    r"correlac\w*|caus\w*|impact\w*|insight\w*|plan\w*|planej\w*|evaluat\w*|avali\w*|"
    r"optimi[sz]\w*|otimiz\w*|step by step|passo a passo|in depth|detalhad\w*)\b"
)
_SMALL_TALK = re.compile(
    r"^(hi|hello|hey|oi|ola|bom dia|boa tarde|boa noite|good (morning|afternoon|evening)|"
    r"thanks?( you)?|obrigad[oa]|valeu|tudo bem|how are you|como vai|tchau|bye)\b"
)


@dataclass(frozen=True)
class Decision:
    tier: Tier
    model: str
    source: Source


def _plain(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in folded if not unicodedata.combining(c)).strip()


def rule_tier(question: str) -> Tier:
    """The rule-based classifier: small talk and short questions are simple; analysis words,
    several questions or a long text are deep; the rest is medium."""
    text = _plain(question)
    words = len(text.split())
    deep_hits = len(_DEEP.findall(text))
    if deep_hits >= 2 or words > 80 or (deep_hits and words > 12) or text.count("?") >= 3:
        return "deep"
    if _SMALL_TALK.match(text) and words <= 12:
        return "simple"
    if words <= 6 and not deep_hits:
        return "simple"
    return "medium"


def parse_classification(raw: str) -> tuple[Tier, float] | None:
    """The classifier's (tier, confidence), or None when its output is unusable."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    tier, confidence = value.get("tier"), value.get("confidence")
    if tier not in TIERS or not isinstance(confidence, int | float):
        return None
    return tier, min(max(float(confidence), 0.0), 1.0)


class Maestro:
    """Chooses a tier (and so a model) for questions sent to a tiered model name."""

    def __init__(
        self,
        tiers: dict[str, TierConfig],
        classify: Classify,
        state: SharedState,
        *,
        cache_ttl_s: float = 86_400.0,
    ) -> None:
        self.tiers = {normalize_name(name): config for name, config in tiers.items()}
        self.classify = classify
        self.state = state
        self.cache_ttl_s = cache_ttl_s
        self.decisions: dict[tuple[str, str, str], int] = {}  # (name, tier, source) -> count

    def routes(self, name: str) -> bool:
        return name in self.tiers

    async def choose(self, name: str, question: str) -> Decision:
        config = self.tiers[name]
        tier, source = await self._tier(name, config, question)
        key = (name, tier, source)
        self.decisions[key] = self.decisions.get(key, 0) + 1
        model: str = getattr(config, tier)
        return Decision(tier=tier, model=model, source=source)

    async def _tier(self, name: str, config: TierConfig, question: str) -> tuple[Tier, Source]:
        if config.classifier is None or not question.strip():
            return rule_tier(question), "rules"
        digest = hashlib.sha256(f"{name}\0{config.classifier}\0{question}".encode()).hexdigest()
        key = f"maestro:{digest}"
        try:
            cached = await self.state.get(key)
        except StateUnavailableError:
            cached = None
        if cached is not None and cached.decode() in TIERS:
            return cached.decode(), "cache"  # type: ignore[return-value]
        try:
            raw = await asyncio.wait_for(
                self.classify(config.classifier, question), timeout=config.classifier_timeout
            )
        except TimeoutError:
            log.info("classifier too slow; rules decide", extra={"model": name})
            return rule_tier(question), "rules"
        except BillumyError as exc:
            log.warning("classifier failed; rules decide", extra={"reason": exc.message})
            return rule_tier(question), "rules"
        parsed = parse_classification(raw)
        if parsed is None or parsed[1] < config.min_confidence:
            return rule_tier(question), "rules"
        tier = parsed[0]
        with contextlib.suppress(StateUnavailableError):
            await self.state.set(key, tier.encode(), self.cache_ttl_s)
        return tier, "classifier"
