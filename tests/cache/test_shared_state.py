"""Contract tests for SharedState, run against LocalState, RedisState and ResilientState.

The Redis cases use the server at 127.0.0.1:6379 with a unique key prefix per test, whose keys
are deleted afterwards. When that server is unreachable they skip, except under CI (``CI``
set), where they fail. The outage tests start a private ``redis-server`` on a free port and
stop, freeze and restart it under a live client.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from secrets import token_hex
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from billumy.cache.base import SharedState, StateUnavailableError
from billumy.cache.local import LocalState
from billumy.cache.redis import RedisState
from billumy.cache.resilient import ResilientState

SHARED_URL = "redis://127.0.0.1:6379/0"
StateFactory = Callable[[], SharedState]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_redis() -> str:
    client = redis.Redis.from_url(SHARED_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except (RedisError, OSError) as exc:
        _unavailable(f"Redis at 127.0.0.1:6379 is unreachable: {exc!r}")
    finally:
        client.close()
    return SHARED_URL


@pytest.fixture(params=["local", "redis", "resilient"])
def make_state(request: pytest.FixtureRequest) -> Iterator[StateFactory]:
    """A factory (states must be built inside the test's event loop) for one backend."""
    if request.param == "local":
        yield LocalState
        return
    url: str = request.getfixturevalue("shared_redis")
    prefix = f"billumy-test-{token_hex(4)}:"
    if request.param == "redis":
        yield lambda: RedisState(url, prefix=prefix)
    else:
        yield lambda: ResilientState(RedisState(url, prefix=prefix))
    client = redis.Redis.from_url(url)
    try:
        for name in client.scan_iter(match=prefix + "*"):
            client.delete(name)
    finally:
        client.close()


def run(make_state: StateFactory, body: Callable[[SharedState], Awaitable[None]]) -> None:
    async def main() -> None:
        state = make_state()
        try:
            await body(state)
            # A resilient state must have passed the whole contract on Redis, not on its
            # local fallback.
            assert not isinstance(state, ResilientState) or not state.degraded
        finally:
            await state.aclose()

    asyncio.run(main())


# -- the contract ----------------------------------------------------------------------------


def test_backend_and_ping(make_state: StateFactory) -> None:
    async def body(state: SharedState) -> None:
        assert state.backend == ("local" if isinstance(state, LocalState) else "redis")
        assert await state.ping() is True

    run(make_state, body)


def test_get_set_ttl_delete(make_state: StateFactory) -> None:
    async def body(state: SharedState) -> None:
        assert await state.get("cache:a") is None
        assert await state.ttl("cache:a") is None
        await state.set("cache:a", b"\x00binary\xff", 30)
        assert await state.get("cache:a") == b"\x00binary\xff"
        ttl = await state.ttl("cache:a")
        assert ttl is not None and 29 < ttl <= 30
        await state.set("cache:a", b"second", 0.3)
        assert await state.get("cache:a") == b"second"
        await asyncio.sleep(0.45)
        assert await state.get("cache:a") is None
        assert await state.ttl("cache:a") is None

        await state.set("cache:b", b"x", 30)
        await state.delete("cache:b")
        await state.delete("cache:b")  # deleting a missing key is fine
        assert await state.get("cache:b") is None

    run(make_state, body)


def test_incr_is_a_fixed_window(make_state: StateFactory) -> None:
    async def body(state: SharedState) -> None:
        assert await state.get_int("rl:a") == 0
        assert await state.incr("rl:a", 1, 0.6) == 1
        await asyncio.sleep(0.3)
        assert await state.incr("rl:a", 2, 10) == 3
        assert await state.get_int("rl:a") == 3
        ttl = await state.ttl("rl:a")
        assert ttl is not None and ttl <= 0.35  # the later increment did not extend it
        await asyncio.sleep(0.4)
        assert await state.get_int("rl:a") == 0
        assert await state.incr("rl:a", 5, 10) == 5  # a new window
        ttl = await state.ttl("rl:a")
        assert ttl is not None and ttl > 9
        assert await state.incr("rl:a", -2, 10) == 3

    run(make_state, body)


def test_incr_is_atomic_under_concurrency(make_state: StateFactory) -> None:
    async def body(state: SharedState) -> None:
        values = await asyncio.gather(*(state.incr("rl:c", 1, 30) for _ in range(200)))
        assert sorted(values) == list(range(1, 201))
        assert await state.get_int("rl:c") == 200

    run(make_state, body)


def test_slots_respect_the_limit_under_concurrency(make_state: StateFactory) -> None:
    async def body(state: SharedState) -> None:
        taken = await asyncio.gather(
            *(state.acquire_slot("par:k", f"req-{i}", 5, 30) for i in range(50))
        )
        assert taken.count(True) == 5
        holders = [f"req-{i}" for i, ok in enumerate(taken) if ok]
        assert await state.acquire_slot("par:k", holders[0], 5, 30)  # renewal succeeds
        assert not await state.acquire_slot("par:k", "late", 5, 30)
        await state.release_slot("par:k", holders[0])
        await state.release_slot("par:k", "never-held")
        assert await state.acquire_slot("par:k", "late", 5, 30)
        assert not await state.acquire_slot("par:k", "later", 5, 30)
        for holder in [*holders[1:], "late"]:
            await state.release_slot("par:k", holder)
        assert await state.acquire_slot("par:k", "later", 5, 30)

    run(make_state, body)


def test_slot_leases_expire_and_renew(make_state: StateFactory) -> None:
    async def body(state: SharedState) -> None:
        assert await state.acquire_slot("par:a", "dead", 1, 0.3)
        assert not await state.acquire_slot("par:a", "next", 1, 0.3)
        await asyncio.sleep(0.4)  # "dead" never released: its lease ran out
        assert await state.acquire_slot("par:a", "next", 1, 0.3)

        assert await state.acquire_slot("par:b", "alive", 1, 0.4)
        await asyncio.sleep(0.25)
        assert await state.acquire_slot("par:b", "alive", 1, 0.4)  # renewed ...
        await asyncio.sleep(0.25)
        assert not await state.acquire_slot("par:b", "other", 1, 0.4)  # ... so still held
        await asyncio.sleep(0.25)
        assert await state.acquire_slot("par:b", "other", 1, 0.4)

    run(make_state, body)


def test_window_keeps_the_newest_in_order(make_state: StateFactory) -> None:
    async def body(state: SharedState) -> None:
        assert await state.read_window("win:a") == []
        await state.push_window("win:a", [b"1", b"2"], 3, 30)
        assert await state.read_window("win:a") == [b"1", b"2"]
        await state.push_window("win:a", [b"3", b"4"], 3, 30)
        assert await state.read_window("win:a") == [b"2", b"3", b"4"]
        await state.push_window("win:a", [], 2, 0.3)  # trims and refreshes the expiry
        assert await state.read_window("win:a") == [b"3", b"4"]
        ttl = await state.ttl("win:a")
        assert ttl is not None and ttl <= 0.3
        await asyncio.sleep(0.45)
        assert await state.read_window("win:a") == []

    run(make_state, body)


def test_caller_mistakes_are_not_outages(make_state: StateFactory) -> None:
    async def body(state: SharedState) -> None:
        await state.set("cache:s", b"text", 30)
        with pytest.raises(TypeError):
            await state.read_window("cache:s")
        with pytest.raises(ValueError):
            await state.incr("cache:s", 1, 30)
        with pytest.raises(ValueError):
            await state.set("cache:t", b"x", 0)
        with pytest.raises(ValueError):
            await state.push_window("win:z", [b"x"], 0, 30)
        await state.set("cache:n", b"41", 30)
        assert await state.incr("cache:n", 1, 30) == 42
        assert await state.get_int("cache:n") == 42

    run(make_state, body)


# -- LocalState's bound ----------------------------------------------------------------------


def test_local_state_is_bounded() -> None:
    async def main() -> None:
        state = LocalState(max_keys=3)
        for key in ("a", "b", "c"):
            await state.set(key, b"v", 30)
        await state.get("a")  # recently used: "b" is now the oldest
        await state.set("d", b"v", 30)
        assert len(state) == 3
        assert [await state.get(k) is not None for k in "abcd"] == [True, False, True, True]

        state = LocalState(max_keys=3)
        await state.set("old", b"v", 0.05)
        await state.set("x", b"v", 30)
        await state.set("y", b"v", 30)
        await asyncio.sleep(0.1)
        await state.set("z", b"v", 30)  # the expired key goes, not a live one
        assert [await state.get(k) is not None for k in ("x", "y", "z")] == [True] * 3

    asyncio.run(main())


# -- outages, on a private redis-server ------------------------------------------------------


class PrivateRedis:
    """A redis-server of our own on a free port, with a password, that tests can kill."""

    password = "s3cret-" + token_hex(4)

    def __init__(self, binary: str) -> None:
        self.binary = binary
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port: int = sock.getsockname()[1]
        self.url = f"redis://:{self.password}@127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--requirepass", self.password],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2, socket_timeout=0.2)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.ping()
                    return
                except (RedisError, OSError):
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("private redis-server did not start") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGCONT)  # a frozen server cannot act on SIGTERM
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def freeze(self, frozen: bool) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP if frozen else signal.SIGCONT)

    def spy(self) -> redis.asyncio.Redis:
        """A separate client, to see what really reached Redis; it reconnects once when its
        pooled connection died with a restarted server."""
        return redis.asyncio.Redis.from_url(self.url, retry=Retry(NoBackoff(), 1))


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        _unavailable("redis-server is not installed")
        raise AssertionError  # unreachable: _unavailable raises
    server = PrivateRedis(binary)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _calls(state: SharedState) -> list[Callable[[], Coroutine[Any, Any, object]]]:
    """One call of every method."""
    return [
        lambda: state.get("cache:k"),
        lambda: state.set("cache:k", b"v", 30),
        lambda: state.delete("cache:k"),
        lambda: state.incr("rl:k", 1, 30),
        lambda: state.get_int("rl:k"),
        lambda: state.ttl("rl:k"),
        lambda: state.throttle("rl:m", 5, 60, 2),
        lambda: state.acquire_slot("par:k", "req", 2, 30),
        lambda: state.release_slot("par:k", "req"),
        lambda: state.push_window("win:k", [b"m"], 5, 30),
        lambda: state.read_window("win:k"),
    ]


def test_redis_state_reports_an_outage_fast(private_redis: PrivateRedis) -> None:
    async def main() -> None:
        state = RedisState(private_redis.url, prefix="t:")
        spy = private_redis.spy()
        try:
            await state.set("cache:k", b"v", 30)
            assert await spy.get("t:cache:k") == b"v"  # prefixed, in the real Redis

            for outage in ("stopped", "frozen"):
                if outage == "stopped":
                    await asyncio.to_thread(private_redis.stop)
                else:
                    private_redis.freeze(True)  # accepts connections, never answers
                for call in _calls(state):
                    started = time.monotonic()
                    with pytest.raises(StateUnavailableError) as info:
                        await call()
                    assert time.monotonic() - started < 2
                    message = str(info.value)
                    assert private_redis.password not in message and "127.0.0.1" not in message
                    assert info.value.__cause__ is None and info.value.__suppress_context__
                assert await state.ping() is False
                if outage == "stopped":
                    await asyncio.to_thread(private_redis.start)
                else:
                    private_redis.freeze(False)
                await state.set("cache:k", b"again", 30)  # the pool reconnects by itself
                assert await state.get("cache:k") == b"again"
        finally:
            await state.aclose()
            await spy.aclose()

    asyncio.run(main())


def test_resilient_state_falls_back_and_recovers(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="billumy.cache.resilient")

    def logged(level: int) -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == level]

    async def main() -> None:
        state = ResilientState(RedisState(private_redis.url, prefix="t:"), retry_s=0.3)
        spy = private_redis.spy()
        try:
            await state.set("cache:k", b"on-redis", 30)
            assert await spy.get("t:cache:k") == b"on-redis"
            assert (state.backend, state.degraded) == ("redis", False)

            await asyncio.to_thread(private_redis.stop)
            started = time.monotonic()
            # The calls that meet the outage are redone locally; none fails.
            values = await asyncio.gather(*(state.incr("rl:n", 1, 30) for _ in range(20)))
            assert sorted(values) == list(range(1, 21))
            assert time.monotonic() - started < 2
            assert (state.backend, state.degraded) == ("local", True)
            for _ in range(5):
                for call in _calls(state):
                    await call()
                await asyncio.sleep(0.2)  # background probes fail meanwhile
            await state.set("cache:k", b"local", 30)
            assert await state.get("cache:k") == b"local"
            assert await state.ping() is True
            assert logged(logging.WARNING) == [
                "Redis unreachable; using in-process state (no shared cache, local limits)"
            ]

            await asyncio.to_thread(private_redis.start)
            for _ in range(100):  # up to 5 s, making no calls: it recovers by itself
                if not state.degraded:
                    break
                await asyncio.sleep(0.05)
            assert (state.backend, state.degraded) == ("redis", False)
            assert logged(logging.INFO) == ["Redis reachable again"]
            # Writes made while degraded stayed local; new ones reach Redis again.
            assert await state.get_int("rl:n") == 0
            await state.set("cache:k", b"back", 30)
            assert await spy.get("t:cache:k") == b"back"
            assert len(logged(logging.WARNING)) == 1
            assert private_redis.password not in caplog.text
        finally:
            await state.aclose()
            await spy.aclose()

    asyncio.run(main())


def test_resilient_state_closes_while_degraded(private_redis: PrivateRedis) -> None:
    async def main() -> None:
        state = ResilientState(RedisState(private_redis.url, prefix="t:"), retry_s=0.2)
        await asyncio.to_thread(private_redis.stop)
        assert await state.ping() is True  # a silent Redis switches to local
        assert state.degraded
        await state.aclose()
        assert asyncio.all_tasks() == {asyncio.current_task()}  # the probe is gone

    asyncio.run(main())
