"""An App's close where it meets other calls. From one of its own handlers (a "shut down"
command, a fatal condition), ``await app.close()`` starts the close and returns at once, and
the close waits for that handler to return as for any other, so its message is settled (an
event acked, a job acked, a request answered) and the App ends closed; waiting there for the
close to end would wait for itself. A cancelled ``close()`` still closes the App; ``run()``
returns however the App was closed; a close during a start lets the start end first.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from pigeon import App, ConfigurationError
from pigeon.testing.conformance.fixtures import MakeApp
from pigeon.testing.waiting import wait_for

PATIENCE = 120.0
"""The App's ``shutdown_timeout``: a close waiting for the handler that awaits it takes this."""

WITHIN = 30.0
"""Seconds in which the App must have closed: far less than ``PATIENCE``."""


def _closing_handler(app: App, kind: str, address: str, steps: list[str]) -> None:
    async def shut_down(n: int) -> int:
        steps.append("called")
        await app.close()
        steps.append("close returned")
        return n

    if kind == "subscribe":
        app.subscribe(address)(shut_down)
    elif kind == "worker":
        app.worker(address)(shut_down)
    else:
        app.rpc(address)(shut_down)


@pytest.mark.parametrize("kind", ["subscribe", "worker", "rpc"])
async def test_a_handler_that_closes_its_app_returns_and_the_app_closes(
    make_app: MakeApp, uid: str, kind: str
) -> None:
    app, client, address = make_app(shutdown_timeout=PATIENCE), make_app(), f"{uid}.shutdown"
    steps: list[str] = []
    _closing_handler(app, kind, address, steps)
    async with client:
        async with app:
            if kind == "rpc":
                assert await client.request(address, 7, timeout=WITHIN) == 7  # answered
            elif kind == "worker":
                await client.enqueue(address, 7)
            else:
                await client.publish(address, 7)
            await wait_for(lambda: not app.transport.connected, WITHIN, "the App closed")
        assert steps == ["called", "close returned"]
        if kind == "worker":  # acked, not handed back for the next worker to shut down
            backlog = await client.backlog(address)
            assert (backlog.ready, backlog.unacked) in {(0, 0), (0, None), (None, None)}


async def test_an_app_closed_by_its_handler_starts_again(make_app: MakeApp, uid: str) -> None:
    app, client, address = make_app(shutdown_timeout=PATIENCE), make_app(), f"{uid}.shutdown"
    steps: list[str] = []
    _closing_handler(app, "subscribe", address, steps)
    async with client:
        for round_ in (1, 2):
            await app.start()
            await client.publish(address, round_)
            done = 2 * round_
            await wait_for(lambda: len(steps) == done, WITHIN, "the handler's close")  # noqa: B023
            await app.close()  # waits for the close the handler began
            assert not app.transport.connected
    assert steps == ["called", "close returned"] * 2


async def test_run_returns_once_a_handler_closed_the_app(make_app: MakeApp, uid: str) -> None:
    app, client, address = make_app(shutdown_timeout=PATIENCE), make_app(), f"{uid}.shutdown"
    steps: list[str] = []
    _closing_handler(app, "worker", address, steps)
    serving = asyncio.create_task(app.run())  # what 'pigeon run' serves
    async with client:
        await wait_for(lambda: app.ready, WITHIN, "the App serving")
        await client.enqueue(address, 1)
        async with asyncio.timeout(WITHIN):
            await serving
    assert steps == ["called", "close returned"]
    assert not app.transport.connected


async def test_a_cancelled_close_still_closes_the_app(make_app: MakeApp, uid: str) -> None:
    """``close()`` under ``asyncio.timeout``: the caller stops waiting, the close goes on (it
    used to stop half-way, the App disconnected never, and every later ``close()`` returned)."""
    app, client, address = make_app(shutdown_timeout=PATIENCE), make_app(), f"{uid}.slow"
    started, release = asyncio.Event(), asyncio.Event()

    @app.subscribe(address)
    async def slow(n: int) -> None:
        started.set()
        await release.wait()

    async with client:
        await app.start()
        await client.publish(address, 1)
        await asyncio.wait_for(started.wait(), WITHIN)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await app.close()  # waits for the handler: cut by the timeout
        release.set()
        await app.close()  # waits for the close under way
    assert not app.transport.connected


async def test_run_returns_once_the_app_is_closed_from_outside(make_app: MakeApp) -> None:
    app = make_app()
    serving = asyncio.create_task(app.run())
    await wait_for(lambda: app.ready, WITHIN, "the App serving")
    await app.close()  # a watchdog, another App's handler, an HTTP endpoint
    async with asyncio.timeout(WITHIN):
        await serving


async def test_a_handler_restarting_its_app_is_told_to_do_it_from_outside(
    make_app: MakeApp, uid: str
) -> None:
    app, client, address = make_app(shutdown_timeout=PATIENCE), make_app(), f"{uid}.restart"
    said: list[str] = []

    @app.subscribe(address)
    async def restart(n: int) -> None:
        await app.close()
        try:
            await app.start()
        except ConfigurationError as exc:
            said.append(str(exc))

    async with client:
        await app.start()
        await client.publish(address, 1)
        await wait_for(lambda: not app.transport.connected, WITHIN, "the App closed")
    assert len(said) == 1
    assert "from outside" in said[0]


async def test_a_close_during_start_lets_it_end_then_closes_what_it_began(
    make_app: MakeApp,
) -> None:
    app, entered, steps = make_app(), asyncio.Event(), []
    go_on = asyncio.Event()

    @app.lifespan
    async def resources(app: App) -> AsyncIterator[None]:
        entered.set()
        await go_on.wait()
        steps.append("entered")
        yield
        steps.append("left")

    starting = asyncio.create_task(app.start())
    await asyncio.wait_for(entered.wait(), WITHIN)
    closing = asyncio.create_task(app.close())
    await asyncio.sleep(0)  # the close is asked while the lifespan is being entered
    go_on.set()
    async with asyncio.timeout(WITHIN):
        await starting  # the start ends as it would have
        await closing
    assert steps == ["entered", "left"]
    assert not app.transport.connected


async def test_a_close_after_a_handler_cancelled_itself_waits_for_no_handler(
    make_app: MakeApp, uid: str
) -> None:
    """A handler that cancels its own task and then awaits ends that call; the close after it
    finds no handler running and does not wait ``shutdown_timeout`` for one (memory did)."""
    app, address, ended = make_app(shutdown_timeout=PATIENCE), f"{uid}.cancels", asyncio.Event()

    @app.subscribe(address)
    async def cancels_itself(n: int) -> None:
        asyncio.current_task().cancel()  # type: ignore[union-attr]
        try:
            await asyncio.sleep(1)
        finally:
            ended.set()

    await app.start()
    await app.publish(address, 1)
    await asyncio.wait_for(ended.wait(), WITHIN)
    async with asyncio.timeout(WITHIN):
        await app.close()
