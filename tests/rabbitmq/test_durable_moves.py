"""A durable subscription's queue of the old naming (the durable name alone, one queue for every
subject of that name) is moved from at the first start: each subject's stored events go to its own
queue, the others stay for their own subscriptions, nothing is lost or taken twice."""

from __future__ import annotations

import logging
import struct
from collections.abc import AsyncIterator

import aio_pika
import pamqp.encode
import pytest

from pigeon import Message
from pigeon.testing.conformance.models import Order
from pigeon.testing.waiting import wait_for
from pigeon.transports.rabbitmq.durables import durable_queue
from tests.conftest import MakeApp

EXCHANGE = "pigeon.events"


@pytest.fixture
async def channel(
    raw: aio_pika.abc.AbstractConnection,
) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    async with raw.channel() as channel:
        yield channel


async def _old_queue(
    channel: aio_pika.abc.AbstractChannel, name: str, *subjects: str
) -> aio_pika.abc.AbstractQueue:
    """What an App before the move declared for ``durable=name`` on each of ``subjects``."""
    exchange = await channel.declare_exchange(EXCHANGE, "topic", durable=True)
    queue = await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
    for subject in subjects:
        await queue.bind(exchange, subject)
    return queue


async def _ready(channel: aio_pika.abc.AbstractChannel, name: str) -> int:
    declared = await channel.declare_queue(name, passive=True)
    return declared.declaration_result.message_count or 0


async def test_each_subject_takes_its_own_stored_events_from_the_old_queue(
    make_app: MakeApp,
    uid: str,
    channel: aio_pika.abc.AbstractChannel,
    caplog: pytest.LogCaptureFixture,
) -> None:
    old, a, b = f"{uid}-audit", f"{uid}.a", f"{uid}.b"
    await _old_queue(channel, old, a, b)
    publisher = make_app()
    async with publisher:
        for n in range(3):
            await publisher.publish(a, Order(id=n))
        for n in range(2):
            await publisher.publish(b, Order(id=10 + n))
    foreign = aio_pika.Message(b"not an event", delivery_mode=2)
    await channel.default_exchange.publish(foreign, routing_key=old)
    assert await _ready(channel, old) == 6

    got: list[tuple[int, str]] = []
    first = make_app()

    @first.subscribe(a, durable=old)
    async def on_a(order: Order, msg: Message) -> None:
        got.append((order.id, msg.subject))

    with caplog.at_level(logging.WARNING, logger="pigeon.rabbitmq"):
        async with first:
            stored = [(n, a) for n in range(3)]
            await wait_for(lambda: got == stored, what="the stored events of a, in order")
            await first.publish(a, Order(id=3))
            await wait_for(lambda: len(got) == 4, what="the new event of a")
            assert (await first.backlog(a, durable=old)).ready == 0
    assert got[-1] == (3, a)
    assert (
        f"queue {old!r}, the old naming of durable subscription {old!r}, still exists"
        in caplog.text
    )
    assert "moved 3 stored events" in caplog.text
    assert await _ready(channel, old) == 3, "b's two events and the foreign message stay"

    second = make_app()

    @second.subscribe(f"{uid}.*", durable=old)
    async def on_b(order: Order, msg: Message) -> None:
        got.append((order.id, msg.subject))

    async with second:  # a wildcard: each moved event keeps the subject it was published on
        await wait_for(lambda: got[4:] == [(10, b), (11, b)], what="the stored events of b")
    assert await _ready(channel, old) == 1, "only the foreign message is left"
    for name in (old, durable_queue(a, old), durable_queue(f"{uid}.*", old)):
        await channel.queue_delete(name)


async def test_stored_events_of_a_subject_not_moved_yet_stay_first_deliveries(
    make_app: MakeApp, uid: str, channel: aio_pika.abc.AbstractChannel
) -> None:
    """Another subject's subscription restarting puts them back unacked each time; a quorum
    queue counts each as a delivery, which its subscription must not take for attempts."""
    old, a, b = f"{uid}-audit", f"{uid}.a", f"{uid}.b"
    await _old_queue(channel, old, a, b)
    publisher = make_app()
    async with publisher:
        for n in range(2):
            await publisher.publish(b, Order(id=10 + n))
    for _ in range(3):
        restarted = make_app()

        @restarted.subscribe(a, durable=old)
        async def on_a(order: Order) -> None:
            raise AssertionError("no event of a was stored")

        async with restarted:
            pass
    assert await _ready(channel, old) == 2

    got_b: list[tuple[int, int]] = []
    second = make_app()

    @second.subscribe(b, durable=old)
    async def on_b(order: Order, msg: Message) -> None:
        got_b.append((order.id, msg.attempt))

    async with second:
        await wait_for(lambda: len(got_b) == 2, what="the stored events of b")
    assert got_b == [(10, 1), (11, 1)]
    assert await _ready(channel, old) == 0
    for name in (old, durable_queue(a, old), durable_queue(b, old)):
        await channel.queue_delete(name)


async def test_a_passive_app_uses_the_old_queue_until_its_owner_declares_the_new_one(
    make_app: MakeApp, uid: str, channel: aio_pika.abc.AbstractChannel
) -> None:
    old, subject = f"{uid}-audit", f"{uid}.c"
    await _old_queue(channel, old, subject)
    got: list[int] = []
    app = make_app(passive=True)

    @app.subscribe(subject, durable=old)
    async def on_c(order: Order) -> None:
        got.append(order.id)

    async with app:
        await app.publish(subject, Order(id=1))
        await wait_for(lambda: got == [1], what="the event through the old queue")
        assert (await app.backlog(subject, durable=old)).consumers == 1
    await channel.queue_delete(old)


async def test_a_subscription_to_the_rest_takes_the_events_of_its_prefix_too(
    make_app: MakeApp, uid: str, channel: aio_pika.abc.AbstractChannel
) -> None:
    """``>`` was bound as ``#``, which also matches the prefix itself: those events were the
    subscription's, and move with it."""
    old = f"{uid}-audit"
    await _old_queue(channel, old, f"{uid}.#")
    publisher = make_app()
    async with publisher:
        await publisher.publish(uid, Order(id=1))
        await publisher.publish(f"{uid}.x", Order(id=2))
    got: list[int] = []
    app = make_app()

    @app.subscribe(f"{uid}.>", durable=old)
    async def on_rest(order: Order) -> None:
        got.append(order.id)

    async with app:
        await wait_for(lambda: got == [1, 2], what="both stored events")
    assert await _ready(channel, old) == 0
    for name in (old, durable_queue(f"{uid}.>", old)):
        await channel.queue_delete(name)


async def test_an_event_with_a_header_text_that_is_not_utf8_moves(
    make_app: MakeApp,
    uid: str,
    channel: aio_pika.abc.AbstractChannel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """AMQP's long strings are bytes, and other clients send some that are not UTF-8; pamqp
    reads them as ``bytes`` and cannot write them back: the move failed at every start."""
    old, subject = f"{uid}-audit", f"{uid}.a"
    await _old_queue(channel, old, subject)
    exchange = await channel.get_exchange(EXCHANGE)
    write = pamqp.encode.encode_table_value

    def as_long_string(value: object) -> bytes:  # what such a client puts on the wire
        if isinstance(value, bytes):
            return b"S" + struct.pack(">I", len(value)) + value
        return write(value)  # type: ignore[arg-type]

    with monkeypatch.context() as patched:
        patched.setattr(pamqp.encode, "encode_table_value", as_long_string)
        message = aio_pika.Message(b'{"id": 1}', headers={"trace": b"\xff\xfe"}, delivery_mode=2)
        await exchange.publish(message, routing_key=subject)
    got: list[tuple[int, str]] = []
    app = make_app()

    @app.subscribe(subject, durable=old)
    async def on_a(order: Order, msg: Message) -> None:
        got.append((order.id, msg.headers["trace"]))

    async with app:
        await wait_for(lambda: bool(got), what="the moved event")
    assert got == [(1, "\ufffd\ufffd")], "the text the handler is given without a move"
    assert await _ready(channel, old) == 0
    for name in (old, durable_queue(subject, old)):
        await channel.queue_delete(name)
