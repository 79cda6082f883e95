"""A closing rpc server abandons no caller: a request it holds but has not started (more in
flight than its ``concurrency``), and one that reaches it while it closes, goes on to another
server of the subject, or, if none runs, its caller raises ``NoResponders`` at once (nothing ran:
safe to retry). Only a request whose handler was stopped hears ``ServerStopped``."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from pigeon import App, NoResponders, RemoteError
from pigeon.testing.conformance.fixtures import MakeApp
from pigeon.testing.waiting import wait_for

SOON = 10.0
"""Seconds within which every caller must hear; their requests' own timeout is twice that."""
TIMEOUT = 2 * SOON
LOAD = 400
"""Requests sent over about a second while one of two servers closes."""


class Blocking:
    """An rpc handler that runs until ``release`` is set; ``started`` counts its calls."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.release = asyncio.Event()

    async def __call__(self, n: int) -> int:
        self.started.append(n)
        await self.release.wait()
        return n


def serve_blocking(app: App, subject: str, handler: Blocking, concurrency: int = 1) -> None:
    """Serve ``subject`` on ``app`` with ``handler``."""

    @app.rpc(subject, concurrency=concurrency)
    async def serve(n: int) -> int:
        return await handler(n)


async def _first_started(handler: Blocking) -> None:
    await wait_for(lambda: bool(handler.started), SOON, "the first request's handler to start")


async def hold_two(
    client: App, subject: str, handler: Blocking
) -> tuple[asyncio.Task[int], list[asyncio.Task[int]]]:
    """Request 1 of ``subject`` and wait until ``handler`` (``concurrency=1``) runs it, then
    requests 2 and 3, which its server holds unstarted: the three requests' tasks."""
    first = asyncio.create_task(client.request(subject, 1, timeout=TIMEOUT))
    await _first_started(handler)
    held = [asyncio.create_task(client.request(subject, n, timeout=TIMEOUT)) for n in (2, 3)]
    return first, held


def _assert_stopped(outcome: object) -> None:
    """The started request's outcome: ``ServerStopped``, its handler was stopped."""
    assert isinstance(outcome, RemoteError), outcome
    assert outcome.type == "ServerStopped", outcome


async def test_requests_a_closing_server_never_started_fail_at_once_with_no_responders(
    make_app: MakeApp, uid: str
) -> None:
    server, client = make_app(shutdown_timeout=0.2), make_app()
    handler = Blocking()
    serve_blocking(server, f"{uid}.ask", handler)
    async with client:
        await server.start()
        first, held = await hold_two(client, f"{uid}.ask", handler)
        await server.close()
        async with asyncio.timeout(SOON):  # long before the requests' own deadline
            outcomes = await asyncio.gather(first, *held, return_exceptions=True)
    assert handler.started == [1], handler.started
    _assert_stopped(outcomes[0])
    assert [type(each) for each in outcomes[1:]] == [NoResponders, NoResponders], outcomes


async def test_requests_a_closing_server_never_started_go_to_another_server(
    make_app: MakeApp, uid: str
) -> None:
    closing, client = make_app(shutdown_timeout=0.2), make_app()
    blocked = Blocking()
    serve_blocking(closing, f"{uid}.ask", blocked)
    async with client:
        await closing.start()
        first, held = await hold_two(client, f"{uid}.ask", blocked)
        other = make_app()
        answering = Blocking()
        answering.release.set()
        serve_blocking(other, f"{uid}.ask", answering)
        async with other:
            await closing.close()
            async with asyncio.timeout(SOON):
                outcomes = await asyncio.gather(first, *held, return_exceptions=True)
    _assert_stopped(outcomes[0])
    assert outcomes[1:] == [2, 3], outcomes
    started = (blocked.started, sorted(answering.started))
    assert started == ([1], [2, 3]), started


async def test_a_request_reaching_a_closing_server_fails_at_once_while_it_drains(
    make_app: MakeApp, uid: str
) -> None:
    server, client = make_app(shutdown_timeout=60), make_app()
    handler = Blocking()
    serve_blocking(server, f"{uid}.ask", handler)
    async with client:
        await server.start()
        first = asyncio.create_task(client.request(f"{uid}.ask", 1, timeout=TIMEOUT))
        await _first_started(handler)
        closing = asyncio.create_task(server.close())  # waits for the first request's handler
        with pytest.raises(NoResponders):
            async with asyncio.timeout(SOON):
                await client.request(f"{uid}.ask", 2, timeout=TIMEOUT)
        assert not closing.done()
        handler.release.set()
        async with asyncio.timeout(SOON):
            assert await first == 1
            await closing
    assert handler.started == [1], handler.started


async def test_closing_one_of_two_servers_under_steady_load_loses_no_request(
    make_app: MakeApp, uid: str
) -> None:
    closing, staying, client = make_app(), make_app(), make_app()
    handled: Counter[int] = Counter()
    for app in (closing, staying):

        @app.rpc(f"{uid}.ask", concurrency=4)
        async def ask(n: int) -> int:
            handled[n] += 1
            await asyncio.sleep(0.005)  # the handler's own work: requests overlap
            return n

    async with client, staying:
        await closing.start()
        asking: list[asyncio.Task[int]] = []
        for n in range(LOAD):
            asking.append(asyncio.create_task(client.request(f"{uid}.ask", n, timeout=TIMEOUT)))
            if n == LOAD // 2:
                stopping = asyncio.create_task(closing.close())
            await asyncio.sleep(1 / LOAD)  # a steady stream over about a second
        async with asyncio.timeout(SOON):
            answers = await asyncio.gather(*asking, return_exceptions=True)
            await stopping
    lost = [(n, answer) for n, answer in enumerate(answers) if answer != n]
    assert not lost, lost[:5]
    assert max(handled.values()) == 1, handled.most_common(3)
