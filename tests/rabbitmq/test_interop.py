"""Plain aio-pika clients, following RabbitMQ's usual conventions, talk to pigeon both ways."""

from __future__ import annotations

import asyncio
import json
import uuid

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from pigeon import App, Message, Reject
from pigeon import headers as h
from pigeon.testing.conformance.models import Job, Order
from pigeon.testing.waiting import wait_for
from tests.conftest import MakeApp


async def test_tutorial_rpc_client_gets_the_reply_of_a_pigeon_handler(
    make_app: MakeApp, uid: str, raw: AbstractConnection
) -> None:
    server = make_app()

    @server.rpc(f"{uid}.rpc_queue")
    async def fib(n: int) -> int:
        a, b = 0, 1
        for _ in range(n):
            a, b = b, a + b
        return a

    async with server:
        # RabbitMQ tutorial 6 (aio-pika): exclusive callback queue, reply_to, correlation_id
        channel = await raw.channel()
        callback_queue = await channel.declare_queue(exclusive=True)
        futures: dict[str, asyncio.Future[bytes]] = {}

        async def on_response(message: AbstractIncomingMessage) -> None:
            future = futures.pop(message.correlation_id or "", None)
            if future is not None:
                future.set_result(message.body)

        await callback_queue.consume(on_response, no_ack=True)
        correlation_id = str(uuid.uuid4())
        futures[correlation_id] = asyncio.get_running_loop().create_future()
        await channel.default_exchange.publish(
            aio_pika.Message(b"30", correlation_id=correlation_id, reply_to=callback_queue.name),
            routing_key=f"{uid}.rpc_queue",
        )
        body = await asyncio.wait_for(futures[correlation_id], 10)
    assert json.loads(body) == 832040


@pytest.mark.parametrize("name", ["rpc_queue", "c++"])
async def test_pigeon_client_gets_the_reply_of_a_tutorial_rpc_server(
    make_app: MakeApp, uid: str, raw: AbstractConnection, name: str
) -> None:
    """``c++``: pigeon sends a request to a subject with ``+`` through its rank exchanges first
    (its own servers of such a subject are bound there), then to the queue of that name."""
    channel = await raw.channel()
    queue = await channel.declare_queue(f"{uid}.{name}", auto_delete=True)

    async def on_request(message: AbstractIncomingMessage) -> None:
        async with message.process():
            n = int(message.body)
            reply = aio_pika.Message(str(n * 2).encode(), correlation_id=message.correlation_id)
            await channel.default_exchange.publish(reply, routing_key=message.reply_to or "")

    await queue.consume(on_request)
    async with make_app() as client:
        assert await client.request(f"{uid}.{name}", 21, reply=int) == 42


async def test_raw_publishers_json_reaches_a_pigeon_worker(
    make_app: MakeApp, uid: str, raw: AbstractConnection
) -> None:
    app = make_app()
    done: list[tuple[Order, Message]] = []

    @app.worker(f"{uid}.orders")
    async def work(order: Order, msg: Message) -> None:
        done.append((order, msg))

    async with app:
        channel = await raw.channel()
        for body, extra in (
            (b'{"id": 1}', {}),  # no content type at all, as in the tutorials
            (b'{"id": 2, "item": "gear"}', {"content_type": "application/json"}),
        ):
            message = aio_pika.Message(
                body,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                headers={"tenant": "acme"},
                **extra,
            )
            await channel.default_exchange.publish(message, routing_key=f"{uid}.orders")
        await wait_for(lambda: len(done) == 2)
    assert [order for order, _ in done] == [Order(id=1), Order(id=2, item="gear")]
    assert all(msg.headers == {"tenant": "acme"} for _, msg in done)
    assert all(msg.attempt == 1 and msg.subject == f"{uid}.orders" for _, msg in done)


async def test_raw_publisher_reaches_pigeon_subscribers_through_the_topic_exchange(
    make_app: MakeApp, uid: str, raw: AbstractConnection
) -> None:
    app = make_app()
    seen: list[str] = []

    @app.subscribe(f"{uid}.orders.>")
    async def audit(order: Order, msg: Message) -> None:
        seen.append(msg.subject)

    async with app:
        channel = await raw.channel()
        exchange = await channel.get_exchange("pigeon.events")
        await exchange.publish(aio_pika.Message(b'{"id": 1}'), routing_key=f"{uid}.orders.eu.new")
        await wait_for(lambda: seen == [f"{uid}.orders.eu.new"])


async def test_dead_letters_are_visible_to_a_raw_client(
    make_app: MakeApp, uid: str, raw: AbstractConnection
) -> None:
    app = make_app()

    @app.worker(f"{uid}.invoices")
    async def render(job: Job) -> None:
        raise Reject("customer deleted")

    async with app:
        await app.enqueue(f"{uid}.invoices", Job(7), headers={"tenant": "acme"})
        await _wait_letters(app, f"{uid}.invoices")
    channel = await raw.channel()
    dlq = await channel.get_queue(f"{uid}.invoices.dlq")
    letter = await dlq.get(no_ack=True)
    assert json.loads(letter.body) == {"n": 7}
    assert letter.headers["tenant"] == "acme"
    assert letter.headers[h.ERROR_TYPE] == "Reject"
    assert letter.headers[h.ERROR_MESSAGE] == "customer deleted"
    assert letter.headers[h.QUEUE] == f"{uid}.invoices"
    assert letter.delivery_mode == aio_pika.DeliveryMode.PERSISTENT


async def test_a_job_a_raw_consumer_rejects_is_dead_lettered_with_why(
    make_app: MakeApp, uid: str, raw: AbstractConnection
) -> None:
    """Every work queue dead-letters through ``pigeon.dlx`` into ``<queue>.dlq``; pigeon reports
    what the broker dead-lettered from its ``x-death`` record."""
    app = make_app()
    async with app:
        await app.enqueue(f"{uid}.shared", Job(1))
        channel = await raw.channel()
        queue = await channel.get_queue(f"{uid}.shared")
        job = await queue.get()
        await job.reject(requeue=False)
        letters = await _wait_letters(app, f"{uid}.shared")
    assert letters[0].decode(Job) == Job(1)
    assert letters[0].failure is not None
    assert letters[0].failure.type == "RejectedByConsumer"
    assert letters[0].failure.queue == f"{uid}.shared"


async def test_quorum_delivery_limit_backstops_returns_pigeon_never_saw(
    make_app: MakeApp, uid: str, raw: AbstractConnection
) -> None:
    app = make_app(delivery_limit=2)
    async with app:
        await app.enqueue(f"{uid}.returned", Job(1))
        channel = await raw.channel()
        queue = await channel.get_queue(f"{uid}.returned")
        for _ in range(3):  # returned three times by a consumer that is not pigeon
            job = await queue.get()
            await job.nack(requeue=True)
        letters = await _wait_letters(app, f"{uid}.returned")
    assert letters[0].failure is not None
    assert letters[0].failure.type == "DeliveryLimitExceeded"


async def _wait_letters(app: App, queue: str) -> list[Message]:
    letters: list[Message] = []

    async def arrived() -> bool:
        nonlocal letters
        letters = await app.dead_letters(queue)
        return bool(letters)

    await wait_for(arrived, what=f"dead letters on {queue}")
    return letters
