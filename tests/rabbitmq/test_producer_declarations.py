"""A producer declares each work queue once per connection, and again after a reconnect."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aio_pika

from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_for
from tests.conftest import MakeApp

Drop = Callable[[], Awaitable[None]]


async def _delete(amqp_url: str, *queues: str) -> None:
    async with await aio_pika.connect(amqp_url) as raw:
        channel = await raw.channel()
        for queue in queues:
            await channel.queue_delete(queue)


async def test_a_producer_declares_a_queue_deleted_while_it_was_disconnected_again(
    make_app: MakeApp, uid: str, amqp_url: str, drop_connections: Drop
) -> None:
    app = make_app()
    queue = f"{uid}.jobs"
    async with app:
        await app.enqueue(queue, Job(1))
        await drop_connections()
        await _delete(amqp_url, queue, f"{queue}.dlq")  # the broker lost them meanwhile
        await app.enqueue(queue, Job(2))
        await app.enqueue(queue, Job(3))

        async def stored() -> bool:
            return (await app.backlog(queue)).ready == 2

        await wait_for(stored, what="the two jobs sent after the reconnect stored")
        assert await app.dead_letters(queue) == [], "its dead-letter queue is back as well"


async def test_a_queue_deleted_under_a_producer_is_declared_again(
    make_app: MakeApp, uid: str, amqp_url: str
) -> None:
    app = make_app()
    queue = f"{uid}.jobs"
    async with app:
        for n in range(50):
            await app.enqueue(queue, Job(n))
        await _delete(amqp_url, queue)  # an operator deletes it: the next job declares it again
        await app.enqueue(queue, Job(50))

        async def stored() -> bool:
            return (await app.backlog(queue)).ready == 1

        await wait_for(stored, what="the job after the deletion stored")
