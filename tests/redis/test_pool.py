"""Blocking readers do not starve commands: an App with more readers (RPC subjects, groups,
workers) than ``max_connections`` starts and answers at once."""

from __future__ import annotations

import asyncio

from pigeon import App
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_for


async def test_more_blocking_readers_than_max_connections_still_work(
    redis_url: str, uid: str
) -> None:
    app = App(redis_url, max_connections=4)
    done: list[int] = []
    for n in range(8):

        @app.rpc(f"{uid}.rpc{n}")
        async def echo(body: int) -> int:
            return body

        @app.subscribe(f"{uid}.ev{n}", group="g")
        async def on_event(body: int) -> None:
            pass

    @app.worker(f"{uid}.jobs")
    async def work(job: Job) -> None:
        done.append(job.n)

    async with asyncio.timeout(20):  # a starved pool waits 30 s per command
        async with app:
            for n in range(8):
                assert await app.request(f"{uid}.rpc{n}", n, timeout=5) == n
            await app.publish(f"{uid}.ev0", 1)
            await app.enqueue(f"{uid}.jobs", Job(1))
            await wait_for(lambda: done == [1], what="the job")
