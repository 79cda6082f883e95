"""Confirmed publishes in flight when the broker drops the connection are stored once it is back:
the publisher's channel observer hands them to the reconnect instead of leaving them waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_for
from tests.conftest import MakeApp

Drop = Callable[[], Awaitable[None]]
PRODUCERS = 8


async def test_enqueues_in_flight_when_the_connection_drops_are_stored(
    make_app: MakeApp, uid: str, drop_connections: Drop
) -> None:
    app = make_app()
    handled: set[int] = set()
    stored: list[int] = []
    dropped = asyncio.Event()

    @app.worker(f"{uid}.jobs", concurrency=16)
    async def work(job: Job) -> None:
        handled.add(job.n)

    async def produce(first: int) -> None:  # enqueues before, during and after the drop
        after = 0
        for n in range(first, first + 100_000, PRODUCERS):
            await app.enqueue(f"{uid}.jobs", Job(n))
            stored.append(n)
            after += dropped.is_set()
            if after > 5:
                return

    async with app:
        await app.enqueue(f"{uid}.jobs", Job(-1))  # the queue is declared before the producers
        producers = [asyncio.create_task(produce(first)) for first in range(PRODUCERS)]
        await wait_for(lambda: len(stored) > 50, what="enqueues under way")
        await drop_connections()
        dropped.set()
        await asyncio.wait_for(asyncio.gather(*producers), 30)  # none raised, none hung
        await wait_for(lambda: handled >= set(stored), timeout=30, what="every stored job handled")
