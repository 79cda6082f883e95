"""A Redis server (AOF on, ``appendfsync always``) killed and restarted in the middle of a
work-pool run: every job whose ``enqueue`` returned is handled, and everything resumes."""

from __future__ import annotations

import asyncio
from collections import Counter

from pigeon import App, BrokerError
from pigeon.testing.conformance.models import Job, Order
from pigeon.testing.waiting import wait_for
from tests.brokers.redis import RedisServer

JOBS = 300


async def test_server_restart_mid_run_loses_no_confirmed_job(own_server: RedisServer) -> None:
    app = App(own_server.url, claim_idle=1.0)
    done: Counter[int] = Counter()
    confirmed: set[int] = set()
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
            while True:
                try:
                    await app.enqueue("restart.jobs", Job(n))
                except BrokerError:  # not confirmed: the server was down; send it again
                    await asyncio.sleep(0.05)
                    continue
                confirmed.add(n)
                break

    async with app:
        producing = asyncio.create_task(produce())
        await wait_for(lambda: len(done) >= 50, what="the run under way")
        await asyncio.to_thread(own_server.stop)
        await asyncio.to_thread(own_server.start)
        await asyncio.wait_for(producing, 30)
        await wait_for(lambda: set(done) >= confirmed, timeout=30, what="every confirmed job")
        await wait_for(lambda: app.transport.connected, what="the Pub/Sub connection back")

        async def event_arrives() -> bool:
            await app.publish("restart.events", Order(id=1))
            await asyncio.sleep(0.05)
            return bool(events)

        await wait_for(event_arrives, what="the plain subscription resumed")
    duplicates = sum(count - 1 for count in done.values())
    print(f"\nrestart: {len(confirmed)} jobs confirmed, none lost, {duplicates} handled twice")
    assert confirmed == set(range(JOBS))


async def test_closing_while_the_server_is_down_returns_promptly(own_server: RedisServer) -> None:
    app = App(own_server.url)

    @app.worker("down.jobs")
    async def work(job: Job) -> None:
        pass

    @app.subscribe("down.events", group="g")
    async def on_event(order: Order) -> None:
        pass

    await app.start()
    await asyncio.to_thread(own_server.stop)
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(app.close(), 20)
    assert asyncio.get_running_loop().time() - started < 5
