"""A Redis server that stops answering (``SIGSTOP``: its port still takes connections, nothing
comes back): every call fails with ``BrokerError`` within ``socket_timeout`` (pigeon's default,
5 s, whatever redis-py's is), the close ends in a bounded time, and no connection is left open.
An App may not ask to wait for an answer forever."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest

from pigeon import App, BrokerError, ConfigurationError
from pigeon.transports.redis.calls import CUT_PATIENCE
from tests.brokers.redis import RedisServer

SOCKET_TIMEOUT = 1.0
"""Seconds the Apps here wait for an answer, to keep the tests short."""

MARGIN = 2.0
"""Seconds a failure may come after ``socket_timeout`` (a loaded test machine)."""


@pytest.fixture
def silenced(own_server: RedisServer) -> Iterator[RedisServer]:
    """``own_server``, to be stopped by ``_silence``; it is let go on again at the end."""
    yield own_server
    if own_server.process is not None:
        os.kill(own_server.process.pid, signal.SIGCONT)


def _silence(server: RedisServer) -> None:
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)


def _open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def _calls(app: App) -> list[Coroutine[Any, Any, object]]:
    """A call of each kind: sends, reads, an admin call."""
    return [
        app.publish("silent.ev", 1),
        app.enqueue("silent.jobs", 1),
        app.backlog("silent.jobs"),
        app.dead_letters("silent.jobs"),
        app.purge_dead_letters("silent.jobs"),
    ]


def _serving(app: App) -> App:
    @app.worker("silent.jobs")
    async def work(n: int) -> None: ...

    @app.subscribe("silent.ev")
    async def on_event(n: int) -> None: ...

    @app.rpc("silent.rpc")
    async def serve(n: int) -> int:
        return n

    return app


async def test_every_call_fails_within_the_socket_timeout(silenced: RedisServer) -> None:
    app = _serving(App(silenced.url, socket_timeout=SOCKET_TIMEOUT))
    await app.start()
    try:
        await app.enqueue("silent.jobs", 0)
        _silence(silenced)
        for call in [*_calls(app), app.request("silent.rpc", 1, timeout=30)]:
            began = time.monotonic()
            with pytest.raises(BrokerError, match="no answer"):
                await asyncio.wait_for(call, SOCKET_TIMEOUT + MARGIN)
            assert time.monotonic() - began < SOCKET_TIMEOUT + MARGIN
    finally:
        await asyncio.wait_for(app.close(), 30)


async def test_the_default_socket_timeout_is_five_seconds(silenced: RedisServer) -> None:
    app = App(silenced.url)
    async with app:
        _silence(silenced)
        began = time.monotonic()
        with pytest.raises(BrokerError, match="no answer"):
            await asyncio.wait_for(app.publish("silent.ev", 1), 5.0 + MARGIN)
        assert 4.5 < time.monotonic() - began < 5.0 + MARGIN


async def test_close_ends_the_calls_under_way_and_leaves_no_connection(
    silenced: RedisServer,
) -> None:
    """Calls of a producer under way when the server stopped answering and the App closed,
    most of them waiting for one of the pool's two connections: the close waits
    ``socket_timeout``, then each call left ends with ``BrokerError`` saying the App closed,
    and no socket stays open."""
    opened = _open_files()
    app = App(silenced.url, socket_timeout=SOCKET_TIMEOUT, max_connections=2)
    await app.start()
    await app.enqueue("silent.jobs", 0)
    _silence(silenced)
    calls = [asyncio.create_task(call) for _ in range(20) for call in _calls(app)]
    await asyncio.sleep(0)  # every call on its way
    began = time.monotonic()
    await asyncio.wait_for(app.close(), SOCKET_TIMEOUT + CUT_PATIENCE + MARGIN)
    print(f"\nclose of a producer, Redis silent: {time.monotonic() - began:.1f}s")
    done, _ = await asyncio.wait(calls, timeout=MARGIN)
    assert len(done) == len(calls)
    odd = [task.exception() for task in calls if not isinstance(task.exception(), BrokerError)]
    assert not odd, odd[:3]
    cut = [task for task in calls if "the App closed" in str(task.exception())]
    assert len(cut) > len(calls) / 2  # those still waiting for a connection
    assert _open_files() <= opened


async def test_a_serving_app_closes_in_a_bounded_time(silenced: RedisServer) -> None:
    """Its worker, subscriber and rpc server cannot hand anything back nor leave: each step
    waits for ``socket_timeout``, and the App closes within a few of them (3 s for 1 s here),
    leaving no socket open."""
    opened = _open_files()
    app = _serving(App(silenced.url, socket_timeout=SOCKET_TIMEOUT))
    await app.start()
    await app.enqueue("silent.jobs", 0)
    _silence(silenced)
    calls = [asyncio.create_task(call) for call in _calls(app)]
    await asyncio.sleep(0)  # every call on its way
    began = time.monotonic()
    await asyncio.wait_for(app.close(), 5 * SOCKET_TIMEOUT + MARGIN)
    print(f"\nclose of a serving App, Redis silent: {time.monotonic() - began:.1f}s")
    done, _ = await asyncio.wait(calls, timeout=MARGIN)
    assert len(done) == len(calls)
    assert all(isinstance(task.exception(), BrokerError) for task in calls)
    assert _open_files() <= opened


@pytest.mark.parametrize(
    "timeout", [None, 0, -1.0, float("inf"), float("nan"), True, 1e9, 2**64, 3600.5]
)
def test_an_app_may_not_wait_for_an_answer_forever(timeout: object) -> None:
    with pytest.raises(ConfigurationError, match="socket_timeout"):
        App("redis://127.0.0.1:6379/0", socket_timeout=timeout)


@pytest.mark.parametrize(
    "query", ["socket_timeout=0", "socket_timeout=inf", "socket_connect_timeout=1e300"]
)
def test_nor_may_its_url(query: str) -> None:
    with pytest.raises(ConfigurationError, match=query.split("=")[0]):
        App(f"redis://127.0.0.1:6379/0?{query}")


async def test_a_connect_that_times_out_names_both_waits() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def stays_silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    silent = await asyncio.start_server(stays_silent, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        app = App(f"redis://127.0.0.1:{port}/0", socket_timeout=0.3)
        with pytest.raises(BrokerError, match=r"socket_connect_timeout 5s, socket_timeout 0\.3s"):
            await app.start()
    finally:
        for writer in accepted:
            writer.close()
        silent.close()
        await silent.wait_closed()
