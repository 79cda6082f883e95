"""An rpc server on NATS takes requests straight from the connection's reader while it has a
free slot, and through nats-py's queue once it is full: either way at most ``concurrency``
handlers run, and requests start in the order they came."""

from __future__ import annotations

import asyncio

from pigeon import App
from pigeon.testing.waiting import wait_for


async def test_a_full_server_starts_queued_requests_in_order_and_never_more_at_once(
    nats_url: str, uid: str
) -> None:
    app = App(nats_url)
    started: list[int] = []
    release = asyncio.Event()
    running = most = 0

    @app.rpc(f"{uid}.slow", concurrency=2)
    async def slow(n: int) -> int:
        nonlocal running, most
        started.append(n)
        running += 1
        most = max(most, running)
        await release.wait()
        running -= 1
        return n

    async with app:
        # tasks send in the order they were made: the server receives 0..7 in this order
        calls = [asyncio.create_task(app.request(f"{uid}.slow", n, timeout=10)) for n in range(8)]
        await wait_for(lambda: started == [0, 1])
        release.set()
        assert await asyncio.gather(*calls) == list(range(8))
        more = [app.request(f"{uid}.slow", n, timeout=10) for n in range(8, 40)]
        assert await asyncio.gather(*more) == list(range(8, 40))  # free slots: taken directly
    assert started[:8] == list(range(8))
    assert most == 2
