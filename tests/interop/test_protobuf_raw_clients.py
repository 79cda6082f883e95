"""A plain nats-py / aio-pika client sending ``SerializeToString()`` bytes reaches a pigeon
protobuf handler; a pigeon protobuf event reaches a plain client as parseable bytes."""

from __future__ import annotations

import asyncio

import aio_pika
import nats

from pigeon import App
from pigeon.testing.conformance import shop_pb2
from pigeon.testing.waiting import wait_for
from pigeon.transports.nats.core import registered


async def test_raw_nats_protobuf_reaches_a_pigeon_handler(nats_url: str, uid: str) -> None:
    app = App(nats_url)
    got: list[shop_pb2.Order] = []

    @app.subscribe(f"{uid}.pb")
    async def on_order(order: shop_pb2.Order) -> None:
        got.append(order)

    async with app:
        raw = await nats.connect(nats_url)
        try:
            # no headers at all: a protobuf handler reads a body without content type as protobuf
            await raw.publish(f"{uid}.pb", shop_pb2.Order(id=5, sku="a").SerializeToString())
            await raw.publish(
                f"{uid}.pb",
                shop_pb2.Order(id=6).SerializeToString(),
                headers={"content-type": "application/x-protobuf"},
            )
            await registered(raw)  # nats-py 2.16: flush may overtake what it buffered
        finally:
            await raw.close()
        await wait_for(lambda: len(got) == 2)
    assert got == [shop_pb2.Order(id=5, sku="a"), shop_pb2.Order(id=6)]


async def test_pigeon_protobuf_event_parses_in_a_raw_nats_client(nats_url: str, uid: str) -> None:
    raw = await nats.connect(nats_url)
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_message(msg: nats.aio.msg.Msg) -> None:
        await received.put(msg.data)

    await raw.subscribe(f"{uid}.out", cb=on_message)
    await registered(raw)  # nats-py 2.16: flush may overtake what it buffered
    try:
        async with App(nats_url) as app:
            await app.publish(f"{uid}.out", shop_pb2.Order(id=9, quantity=2))
        data = await asyncio.wait_for(received.get(), 10)
    finally:
        await raw.close()
    assert shop_pb2.Order.FromString(data) == shop_pb2.Order(id=9, quantity=2)


async def test_raw_aio_pika_protobuf_reaches_a_pigeon_worker(amqp_url: str, uid: str) -> None:
    app = App(amqp_url)
    got: list[shop_pb2.Order] = []

    @app.worker(f"{uid}.pbjobs")
    async def work(order: shop_pb2.Order) -> None:
        got.append(order)

    async with app:
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            body = shop_pb2.Order(id=11, sku="b").SerializeToString()
            message = aio_pika.Message(body, content_type="application/x-protobuf")
            await channel.default_exchange.publish(message, routing_key=f"{uid}.pbjobs")
        await wait_for(lambda: len(got) == 1)
    assert got == [shop_pb2.Order(id=11, sku="b")]
