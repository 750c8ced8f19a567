"""The per-minute rate (GCRA, ``billumy.cache.gcra``) on both backends, and through FairUse.

Every case runs on LocalState and on RedisState against the real Redis at 127.0.0.1:6379 (a
unique key prefix per test, deleted afterwards; skipped when unreachable, failed under CI),
each on a clock the test moves, so that the cases are exact and take no real time. The
atomicity cases use the real clock with a rate so slow (5 an hour) that nothing drains while
they run.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable, Iterator
from secrets import token_hex

import pytest
import redis

from billumy.cache.base import SharedState
from billumy.cache.limits import FairUse, Limits
from billumy.cache.local import LocalState
from billumy.cache.redis import RedisState
from billumy.cache.resilient import ResilientState
from billumy.errors import RateLimitedError

from .test_shared_state import shared_redis  # noqa: F401  (a fixture)

# A whole minute on the clock: ``MINUTE + 59.9`` is a tenth of a second before a minute ends.
MINUTE = 60.0 * 100_000


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = MINUTE

    def __call__(self) -> float:
        return self.now


StateFactory = Callable[[Callable[[], float] | None], SharedState]


@pytest.fixture(params=["local", "redis"])
def make_state(request: pytest.FixtureRequest) -> Iterator[StateFactory]:
    """A factory of one backend's state on a given clock (None: the real one)."""
    if request.param == "local":
        yield lambda clock: LocalState() if clock is None else LocalState(clock=clock)
        return
    url: str = request.getfixturevalue("shared_redis")
    prefix = f"billumy-test-{token_hex(4)}:"
    yield lambda clock: RedisState(url, prefix=prefix, clock=clock)
    client = redis.Redis.from_url(url)
    try:
        for name in client.scan_iter(match=prefix + "*"):
            client.delete(name)
    finally:
        client.close()


def run(
    make_state: StateFactory,
    body: Callable[[SharedState, Clock], Awaitable[None]],
    *,
    real_clock: bool = False,
) -> None:
    async def main() -> None:
        clock = Clock()
        state = make_state(None if real_clock else clock)
        try:
            await body(state, clock)
        finally:
            await state.aclose()

    asyncio.run(main())


async def admitted(state: SharedState, n: int, rate: int, burst: int, key: str = "k") -> int:
    """How many of ``n`` requests at once (one after the other, no time between) pass."""
    passed = 0
    for _ in range(n):
        passed += (await state.throttle(key, rate, 60.0, burst)).allowed
    return passed


# -- the meter on each backend ---------------------------------------------------------------


def test_no_burst_across_a_minute_boundary(make_state: StateFactory) -> None:
    async def body(state: SharedState, clock: Clock) -> None:
        # Even with the whole minute as its burst, N just before a minute ends and N just after
        # are not 2N: the second lot finds the meter still full.
        clock.now = MINUTE + 59.9
        assert await admitted(state, 60, 60, 60) == 60
        clock.now = MINUTE + 60.1
        assert await admitted(state, 60, 60, 60) == 0
        # With a small burst, the first lot is that burst; the second gets what 0.2 s drained.
        clock.now = MINUTE + 59.9
        assert await admitted(state, 60, 60, 10, key="small") == 10
        clock.now = MINUTE + 60.1
        assert await admitted(state, 60, 60, 10, key="small") == 0

    run(make_state, body)


def test_steady_traffic_at_the_limit_is_admitted_and_faster_is_not(
    make_state: StateFactory,
) -> None:
    async def body(state: SharedState, clock: Clock) -> None:
        # 6 a minute is one every 10 s: the burst at once, then every 10 s, for 10 minutes.
        assert await admitted(state, 3, 6, 3) == 3
        for _ in range(60):
            clock.now += 10.0
            seen = await state.throttle("k", 6, 60.0, 3)
            assert seen.allowed and seen.remaining == 0
        # A steady client from the start never uses its burst and is never refused.
        for _ in range(60):
            clock.now += 10.0
            assert (await state.throttle("steady", 6, 60.0, 1)).allowed
        # One every 9 s is more than 6 a minute: refused once the burst is used up.
        refused = 0
        for _ in range(60):
            clock.now += 9.0
            refused += not (await state.throttle("fast", 6, 60.0, 3)).allowed
        assert refused > 0

    run(make_state, body)


def test_a_greedy_client_gets_the_rate_plus_its_burst_in_any_minute(
    make_state: StateFactory,
) -> None:
    async def body(state: SharedState, clock: Clock) -> None:
        rate, burst = 12, 4
        times: list[float] = []
        for _ in range(1200):  # a try every 0.5 s for 10 minutes
            if (await state.throttle("k", rate, 60.0, burst)).allowed:
                times.append(clock.now)
            clock.now += 0.5
        # The burst at once, then one every 5 s: 4 + 119 in 600 s.
        assert len(times) == burst + 119
        most = max(sum(1 for u in times if t <= u < t + 60.0) for t in times)
        assert most == rate + burst - 1
        later = [t for t in times if t >= MINUTE + 60.0]  # after the first minute's burst
        assert max(sum(1 for u in later if t <= u < t + 60.0) for t in later) == rate

    run(make_state, body)


def test_retry_after_is_the_time_until_the_next_admission(make_state: StateFactory) -> None:
    async def body(state: SharedState, clock: Clock) -> None:
        assert await admitted(state, 4, 4, 4) == 4  # 4 a minute: one every 15 s
        clock.now += 3.25
        refused = await state.throttle("k", 4, 60.0, 4)
        assert (refused.allowed, refused.remaining) == (False, 0)
        assert refused.retry_after_s == pytest.approx(11.75, abs=1e-5)
        assert refused.reset_s == pytest.approx(56.75, abs=1e-5)
        # A refusal changes nothing: retrying early does not push the admission away.
        clock.now += 11.75 - 0.001
        early = await state.throttle("k", 4, 60.0, 4)
        assert not early.allowed and early.retry_after_s == pytest.approx(0.001, abs=1e-5)
        clock.now += 0.001
        now = await state.throttle("k", 4, 60.0, 4)
        assert (now.allowed, now.remaining, now.retry_after_s) == (True, 0, 0.0)
        assert now.reset_s == pytest.approx(60.0, abs=1e-5)
        # Reset is when all of the burst is back: then 4 pass at once again.
        clock.now += 60.0
        assert await admitted(state, 5, 4, 4) == 4

    run(make_state, body)


def test_a_changed_limit_reads_the_requests_already_made(make_state: StateFactory) -> None:
    async def body(state: SharedState, clock: Clock) -> None:
        assert await admitted(state, 3, 2, 2) == 2  # 2 a minute, both used
        # Raised to 5: the two requests made count against the new burst of 5.
        assert await admitted(state, 5, 5, 5) == 3
        # Lowered to 1 a minute: a full meter, not a debt of the five made.
        seen = await state.throttle("k", 1, 60.0, 1)
        assert not seen.allowed and seen.retry_after_s == pytest.approx(60.0, abs=1e-5)
        clock.now += 60.0
        assert (await state.throttle("k", 1, 60.0, 1)).allowed

    run(make_state, body)


def test_concurrent_admissions_never_pass_the_limit(make_state: StateFactory) -> None:
    async def body(state: SharedState, clock: Clock) -> None:
        # 5 an hour with a burst of 5: nothing drains while the test runs.
        seen = await asyncio.gather(*(state.throttle("k", 5, 3600.0, 5) for _ in range(200)))
        assert sum(a.allowed for a in seen) == 5
        assert sorted(a.remaining for a in seen if a.allowed) == [0, 1, 2, 3, 4]

    run(make_state, body, real_clock=True)


_CLIENT = textwrap.dedent(
    """
    import asyncio, sys
    from billumy.cache.redis import RedisState

    async def main():
        states = [RedisState(sys.argv[1], prefix=sys.argv[2]) for _ in range(2)]
        seen = await asyncio.gather(
            *(states[i % 2].throttle("k", 5, 3600.0, 5) for i in range(100))
        )
        for state in states:
            await state.aclose()
        print(sum(a.allowed for a in seen))

    asyncio.run(main())
    """
)


def test_two_processes_share_one_meter_atomically(
    shared_redis: str,  # noqa: F811
) -> None:
    prefix = f"billumy-test-{token_hex(4)}:"
    try:
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _CLIENT, shared_redis, prefix],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        # Each process, two clients each, 100 requests at once: 5 in all, wherever they ran.
        counts = [int(p.communicate(timeout=60)[0]) for p in procs]
        assert all(p.returncode == 0 for p in procs)
        assert sum(counts) == 5
    finally:
        client = redis.Redis.from_url(shared_redis)
        for name in client.scan_iter(match=prefix + "*"):
            client.delete(name)
        client.close()


# -- through FairUse -------------------------------------------------------------------------


def test_fair_use_headers_and_refusal_come_from_the_meter(make_state: StateFactory) -> None:
    async def body(state: SharedState, clock: Clock) -> None:
        fair_use = FairUse(state)
        limits = Limits(requests_per_minute=4)
        for left in (3, 2, 1, 0):
            report = await fair_use.admit_request("k", limits)
            assert report is not None
            assert (report.limit, report.remaining) == (4, left)
            assert report.reset_s == 15 * (4 - left)  # until all 4 are back
        clock.now += 1.5
        with pytest.raises(RateLimitedError) as info:
            await fair_use.admit_request("k", limits)
        assert info.value.headers == {
            "X-RateLimit-Limit": "4",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": "59",  # 58.5 s, rounded up
            "Retry-After": "14",  # 13.5 s, rounded up: whole seconds never come early
        }
        # The edge gives the same refusal from memory while the wait lasts, for that limit only.
        edge = fair_use.over_rpm("k", 4)
        assert edge is not None and edge.message == info.value.message
        assert edge.headers["X-RateLimit-Remaining"] == "0"
        assert 1 <= int(edge.headers["Retry-After"]) <= 14
        assert int(edge.headers["Retry-After"]) <= int(edge.headers["X-RateLimit-Reset"]) <= 59
        assert fair_use.over_rpm("k", 5) is None and fair_use.over_rpm("other", 4) is None
        clock.now += 13.5
        assert await fair_use.admit_request("k", limits) is not None
        assert fair_use.over_rpm("k", 4) is None  # admitted since: the full path decides

    run(make_state, body)


def test_the_default_burst_is_a_tenth_of_the_minute_at_least_ten() -> None:
    fair_use = FairUse(LocalState())
    assert [fair_use.burst_of(n) for n in (1, 4, 10, 60, 100, 600, 6000)] == [
        1,
        4,
        10,
        10,
        10,
        60,
        600,
    ]
    chosen = FairUse(LocalState(), rate_burst=3)
    assert [chosen.burst_of(n) for n in (1, 2, 3, 600)] == [1, 2, 3, 3]


# -- Redis outages: the policy of the fixed window, unchanged ---------------------------------


def _dead_redis_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"  # nothing listens there now


def test_a_bare_redis_state_that_is_down_lets_requests_through() -> None:
    async def main() -> None:
        state = RedisState(_dead_redis_url(), prefix="t:")
        try:
            fair_use = FairUse(state)
            for _ in range(5):
                assert await fair_use.admit_request("k", Limits(requests_per_minute=1)) is None
        finally:
            await state.aclose()

    asyncio.run(main())


def test_a_resilient_state_meters_in_the_process_while_redis_is_down() -> None:
    async def main() -> None:
        state = ResilientState(RedisState(_dead_redis_url(), prefix="t:"), retry_s=60)
        try:
            fair_use = FairUse(state)
            limits = Limits(requests_per_minute=2)
            assert await fair_use.admit_request("k", limits) is not None
            assert state.degraded and state.backend == "local"
            assert await fair_use.admit_request("k", limits) is not None
            with pytest.raises(RateLimitedError):
                await fair_use.admit_request("k", limits)
        finally:
            await state.aclose()

    asyncio.run(main())
