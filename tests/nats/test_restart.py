"""A NATS server restarted in the middle of a work-pool run: nothing is lost, everything resumes."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import pytest

from pigeon import App
from pigeon.testing.conformance.models import Job, Order
from pigeon.testing.waiting import wait_for
from tests.brokers.nats import NatsServer

JOBS = 300


@pytest.fixture
def server() -> Iterator[NatsServer]:
    """A server of this test alone, which it may stop and start again."""
    server = NatsServer(name="restart")
    server.start()
    yield server
    server.remove()


async def test_server_restart_mid_run_loses_no_job_and_subscriptions_resume(
    server: NatsServer,
) -> None:
    reconnected = asyncio.Event()

    async def on_reconnect() -> None:
        reconnected.set()

    app = App(server.url, reconnected_cb=on_reconnect, reconnect_time_wait=0.2)
    done: Counter[int] = Counter()
    events: list[int] = []

    @app.worker("restart.jobs", concurrency=8)
    async def work(job: Job) -> None:
        await asyncio.sleep(0.002)  # the job's work
        done[job.n] += 1

    @app.subscribe("restart.events")
    async def on_event(order: Order) -> None:
        events.append(order.id)

    async def produce() -> None:
        for n in range(JOBS):
            await app.enqueue("restart.jobs", Job(n))

    async with app:
        producing = asyncio.create_task(produce())
        await wait_for(lambda: len(done) >= 50, what="the run under way")
        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(server.start)
        await asyncio.wait_for(reconnected.wait(), 15)
        await producing
        await wait_for(lambda: len(done) == JOBS, timeout=30, what="every job handled")
        await app.publish("restart.events", Order(id=1))
        await wait_for(lambda: events == [1], what="the core subscription resumed")
    duplicates = sum(count - 1 for count in done.values())
    print(f"\nrestart: {JOBS} jobs, none lost, {duplicates} handled twice")
    assert set(done) == set(range(JOBS))


async def test_closing_while_the_server_is_down_returns_promptly(server: NatsServer) -> None:
    app = App(server.url, reconnect_time_wait=0.2)

    @app.worker("down.jobs")
    async def work(job: Job) -> None:
        pass

    @app.subscribe("down.events")
    async def on_event(order: Order) -> None:
        pass

    await app.start()
    await asyncio.to_thread(server.stop)
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(app.close(), 10)
    assert asyncio.get_running_loop().time() - started < 5
