"""A smooth request rate: GCRA (the generic cell rate algorithm), as a meter of recent requests.

A limit of ``rate`` requests per ``period_s`` with a ``burst`` is a leaky bucket used as a meter:
its *level* counts recent admitted requests not yet drained; it drains continuously at ``rate``
per ``period_s`` (one request every ``T = period_s / rate`` seconds). A request is admitted when
the drained level plus one is at most ``burst``, and an admitted one adds one; a refused one
changes nothing, so a client retrying too early does not push its next admission further away.

This is GCRA: admitting at ``now >= TAT - (burst - 1) * T`` and storing the theoretical arrival
time ``TAT = now + level * T``. The state is kept as the level (in requests) rather than as
``TAT`` so that a key whose limit changes keeps the number of requests it has just made, read
against its new limit (a level above a lowered burst counts as a full bucket as of the last
admission, not as a debt).

What follows for a client:

* ``burst`` requests at once, then one every ``T``; steady traffic at ``rate`` per ``period_s``
  is always admitted. No instant is special: there is no window boundary to burst across.
* Over any span of ``period_s`` seconds at most ``rate + burst - 1`` are admitted (``burst`` of
  1: at most ``rate``), and over a long run at most ``rate`` per ``period_s``.
* A refusal knows exactly when the next request would be admitted (``retry_after_s``).

:func:`meter` is the arithmetic for one process (:class:`~billumy.cache.local.LocalState`);
:data:`THROTTLE_LUA` is the same arithmetic as one Redis script, so that every process and host
sharing a Redis meters a key atomically on one clock (:class:`~billumy.cache.redis.RedisState`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Slack in requests for floating-point drains: steady traffic exactly at the rate must pass.
EPSILON = 1e-6


@dataclass(frozen=True, slots=True)
class Admission:
    """The outcome of one request against a meter."""

    allowed: bool
    remaining: int
    """Requests that would be admitted now, back to back (0 when refused)."""
    retry_after_s: float
    """0 when allowed; else seconds until one request would be admitted."""
    reset_s: float
    """Seconds until the meter is empty again (``remaining`` back to ``burst``)."""


def check_meter(rate: int, period_s: float, burst: int) -> None:
    if rate < 1:
        raise ValueError("rate must be >= 1")
    if not period_s > 0:
        raise ValueError("period_s must be > 0")
    if burst < 1:
        raise ValueError("burst must be >= 1")


def meter(
    level: float, elapsed_s: float, *, rate: int, period_s: float, burst: int
) -> tuple[float, Admission]:
    """One request against a meter whose level was ``level`` ``elapsed_s`` seconds ago: the
    new level (unchanged but drained when refused) and the admission."""
    per = period_s / rate
    level = max(0.0, min(float(burst), level) - max(0.0, elapsed_s) / per)
    allowed = level + 1 <= burst + EPSILON
    if allowed:
        level += 1
    remaining = max(0, math.floor(burst - level + EPSILON))
    retry = 0.0 if allowed else (level + 1 - burst) * per
    return level, Admission(allowed, remaining, retry, level * per)


# The same arithmetic in microseconds. KEYS[1]: the meter, a string "<level> <time in µs>".
# ARGV: rate, period (µs), burst, and optionally the time in µs (tests); by default the
# server's TIME, one clock for every host. Redis >= 5 replicates scripts by effects, which TIME
# needs before writes; on older servers redis.replicate_commands() switches that on. Replies:
# {allowed, remaining, retry after (µs), reset (µs)}, integers (Redis truncates Lua numbers).
THROTTLE_LUA = """
if redis.replicate_commands then redis.replicate_commands() end
local now
if ARGV[4] then
  now = tonumber(ARGV[4])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local burst = tonumber(ARGV[3])
local per = tonumber(ARGV[2]) / tonumber(ARGV[1])
local level = 0
local state = redis.call('GET', KEYS[1])
if state then
  local sep = string.find(state, ' ', 1, true)
  local was = tonumber(string.sub(state, 1, sep - 1))
  local at = tonumber(string.sub(state, sep + 1))
  level = math.max(0, math.min(burst, was) - math.max(0, now - at) / per)
end
local allowed = 0
local retry = 0
if level + 1 <= burst + 1e-6 then
  allowed = 1
  level = level + 1
  -- Empty again after level * per: the key may go then, reading as level 0.
  redis.call('SET', KEYS[1], string.format('%.17g %.17g', level, now),
             'PX', math.max(1, math.ceil(level * per / 1000)))
else
  retry = math.ceil((level + 1 - burst) * per)
end
local remaining = math.max(0, math.floor(burst - level + 1e-6))
return {allowed, remaining, retry, math.ceil(level * per)}
"""
