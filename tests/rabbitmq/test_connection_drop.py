"""The broker drops every connection mid-run: pigeon reconnects, and nothing acked or unacked is
lost."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection

from pigeon import BrokerError, Message, RequestError
from pigeon.testing.conformance.models import Job, Order
from pigeon.testing.waiting import wait_for
from tests.backends import Backend
from tests.brokers import rabbitmq
from tests.conftest import MakeApp

Drop = Callable[[], Awaitable[None]]
JOBS = 120


@pytest.fixture(params=["rabbitmq", "rabbitmq-classic"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Both queue types: quorum queues count returns themselves, classic ones through pigeon."""
    return rabbitmq.BACKENDS[request.param]()


async def test_work_pool_loses_nothing_when_the_connection_drops(
    make_app: MakeApp, uid: str, drop_connections: Drop
) -> None:
    worker = make_app()
    handled: Counter[int] = Counter()
    in_flight: set[int] = set()
    redelivered: list[int] = []
    gate = asyncio.Event()

    @worker.worker(f"{uid}.jobs", concurrency=8)
    async def work(job: Job, msg: Message) -> None:
        if msg.attempt > 1:
            redelivered.append(job.n)
        if job.n >= JOBS // 4:  # from here on, jobs are in flight when the connection drops
            in_flight.add(job.n)
            await gate.wait()
        handled[job.n] += 1

    async with worker:
        for n in range(JOBS):
            await worker.enqueue(f"{uid}.jobs", Job(n))
        await wait_for(lambda: len(in_flight) == 8, what="8 jobs in flight")
        unacked = set(in_flight)
        await drop_connections()  # returns once the broker closes: it ignores later acks
        gate.set()  # the jobs in flight finish now, too late to be acked
        for n in range(JOBS, JOBS + 10):  # the producer rides out the reconnect
            await worker.enqueue(f"{uid}.jobs", Job(n))
        await wait_for(lambda: len(handled) == JOBS + 10, timeout=30, what="every job handled")
        assert await worker.dead_letters(f"{uid}.jobs") == []
    assert set(handled) == set(range(JOBS + 10)), "every job handled at least once"
    assert set(redelivered) >= unacked, "the unacked jobs came again, their attempt counted"


async def test_subscribers_servers_and_the_reply_consumer_come_back(
    make_app: MakeApp, uid: str, drop_connections: Drop
) -> None:
    server, client = make_app(), make_app()
    events: list[int] = []

    @server.subscribe(f"{uid}.orders")
    async def on_order(order: Order) -> None:
        events.append(order.id)

    @server.rpc(f"{uid}.double")
    async def double(n: int) -> int:
        return n * 2

    async with server, client:
        assert await client.request(f"{uid}.double", 1, reply=int) == 2
        await drop_connections()

        async def answered() -> bool:  # a request sent while either side reconnects may fail
            try:
                return bool(await client.request(f"{uid}.double", 2, reply=int, timeout=2) == 4)
            except (BrokerError, RequestError):
                return False

        await wait_for(answered, what="the server and the reply consumer back")

        async def delivered() -> bool:  # events published before it is back are not kept for it
            await client.publish(f"{uid}.orders", Order(id=1))
            return bool(events)

        await wait_for(delivered, what="the subscription consuming again")


async def test_a_work_queue_deleted_under_its_worker_comes_back(
    make_app: MakeApp, uid: str, raw: AbstractConnection
) -> None:
    app = make_app()
    done: list[int] = []

    @app.worker(f"{uid}.jobs")
    async def work(job: Job) -> None:
        done.append(job.n)

    async with app:
        await app.enqueue(f"{uid}.jobs", Job(1))
        await wait_for(lambda: done == [1])
        await (await raw.channel()).queue_delete(f"{uid}.jobs")  # an operator resets the queue

        async def declared_again() -> bool:  # by the worker, whose consumer was cancelled
            channel = await raw.channel()
            try:
                await channel.declare_queue(f"{uid}.jobs", passive=True)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                return False
            await channel.close()
            return True

        await wait_for(declared_again, what="the worker declaring its queue again")
        await app.enqueue(f"{uid}.jobs", Job(2))
        await wait_for(lambda: done == [1, 2], what="the worker consuming the new queue")
