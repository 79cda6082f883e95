"""RabbitMQ: pigeon beside raw aio-pika (publisher confirms, manual ack) and FastStream 0.7.

Every implementation does the same work in the same run: encode a pydantic model to JSON, publish
it persistent and wait for the publisher confirm, decode and validate it on the other side, ack
after the handler. The broker is ``PIGEON_BENCH_AMQP_URL`` (default ``amqp://guest:guest@
127.0.0.1:5672/``); each case declares queues of its own and deletes them afterwards.

- ``pub-sub``: ``count // 10`` events published one after another to one subscriber, msg/s end to
  end (first publish to last event handled).
- ``work pool``: the same with jobs on a durable quorum queue and one worker of concurrency 16.
- ``pub-sub, 64 senders`` and ``work pool, 64 senders``: ``count // 5`` messages from 64 callers
  at once, each still awaiting its confirm. One sender measures the broker's confirm latency more
  than the client (each message waits a round trip and a quorum commit); here the client's work
  per message sets the pace.
- ``rpc sequential``: p50 and p99 of ``count // 50`` requests, one after another.
- ``rpc 64 in flight``: ``count // 10`` requests from 64 concurrent callers, requests/s.

RPC servers run in a process of their own (``python -m benchmarks.rabbitmq_cases <impl> <queue>``),
as they would in production, so that a client's figures are not its server's CPU time. Cases take
turns within each round (``--rounds``, default three) and the median round counts; pigeon's
ratio to each implementation in every round is printed too (median and spread).
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import aio_pika
from pydantic import BaseModel

from benchmarks import ratios, rpc
from benchmarks.common import Result, Stopwatch, throughput
from pigeon import App

URL = os.environ.get("PIGEON_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
WORKERS = 16
EVENT_PREFETCH = 32  # what pigeon's subscriptions use (transport option event_prefetch)
IN_FLIGHT = rpc.IN_FLIGHT
SENDERS = 64
"""Callers sending at once in the ``, 64 senders`` cases: with one, each message waits for its
publisher confirm before the next is sent, so the broker's confirm latency sets the pace."""


class Tick(BaseModel):
    symbol: str
    price: float
    volume: int


TICK = Tick(symbol="PGN", price=12.5, volume=300)


def _name(kind: str) -> str:
    return f"bench.{kind}.{uuid.uuid4().hex[:8]}"


class Counter:
    """Counts handled messages; ``done`` is set at ``target``."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.done = asyncio.Event()

    def hit(self) -> None:
        self.count += 1
        if self.count >= self.target:
            self.done.set()


async def _sending(
    count: int, send: Callable[[], Awaitable[Any]], done: asyncio.Event, senders: int
) -> float:
    """Seconds for ``senders`` callers, each awaiting one ``send`` after another (its confirm
    first), to send ``count`` messages between them, and for the last to be handled."""

    async def sender(share: int) -> None:
        for _ in range(share):
            await send()

    with Stopwatch() as sw:
        shares = (count // senders + (index < count % senders) for index in range(senders))
        await asyncio.gather(*(sender(share) for share in shares))
        await done.wait()
    return sw.seconds


def _case(name: str, senders: int) -> str:
    return name if senders == 1 else f"{name}, {senders} senders"


async def _delete_queues(*names: str) -> None:
    async with await aio_pika.connect(URL) as connection:
        channel = await connection.channel()
        for name in names:
            await channel.queue_delete(name)


# -- pigeon ----------------------------------------------------------------------------------------


async def pigeon_pubsub(count: int, senders: int = 1) -> Result:
    app, subject = App(URL), _name("pigeon")
    counter = Counter(count)

    @app.subscribe(subject)
    async def on_tick(tick: Tick) -> None:
        counter.hit()

    async with app:
        seconds = await _sending(count, lambda: app.publish(subject, TICK), counter.done, senders)
    return throughput(_case("rabbitmq pub-sub", senders), "pigeon", count, seconds)


async def pigeon_workpool(count: int, senders: int = 1) -> Result:
    app, queue = App(URL), _name("pigeon")
    counter = Counter(count)

    @app.worker(queue, concurrency=WORKERS)
    async def work(tick: Tick) -> None:
        counter.hit()

    async with app:
        seconds = await _sending(count, lambda: app.enqueue(queue, TICK), counter.done, senders)
    await _delete_queues(queue, f"{queue}.dlq")
    return throughput(_case("rabbitmq work pool", senders), "pigeon", count, seconds)


async def pigeon_rpc(count: int) -> list[Result]:
    client, subject = App(URL), _name("pigeon")

    async def call() -> Tick:
        reply: Tick = await client.request(subject, TICK, reply=Tick)
        return reply

    async with rpc.server("benchmarks.rabbitmq_cases", "pigeon", subject), client:
        return await rpc.results("rabbitmq", "pigeon", count, call)


async def serve_pigeon(queue: str) -> None:
    server = App(URL)

    @server.rpc(queue)
    async def quote(tick: Tick) -> Tick:
        return tick

    async with server:
        await rpc.serve_until_stdin_closes()


# -- raw aio-pika ----------------------------------------------------------------------------------


def _raw_message(**properties: Any) -> aio_pika.Message:
    return aio_pika.Message(
        TICK.model_dump_json().encode(),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        **properties,
    )


async def raw_pubsub(count: int, senders: int = 1) -> Result:
    counter = Counter(count)
    async with await aio_pika.connect_robust(URL) as connection:
        publisher = await connection.channel()
        subscriber = await connection.channel()
        await subscriber.set_qos(prefetch_count=EVENT_PREFETCH)
        exchange = await publisher.declare_exchange(
            _name("raw"), aio_pika.ExchangeType.TOPIC, auto_delete=True
        )
        queue = await subscriber.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange.name, "ticks")

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            Tick.model_validate_json(message.body)
            await message.ack()
            counter.hit()

        await queue.consume(on_message)
        seconds = await _sending(
            count, lambda: exchange.publish(_raw_message(), "ticks"), counter.done, senders
        )
    return throughput(_case("rabbitmq pub-sub", senders), "raw aio-pika", count, seconds)


async def raw_workpool(count: int, senders: int = 1) -> Result:
    counter = Counter(count)
    async with await aio_pika.connect_robust(URL) as connection:
        publisher = await connection.channel()
        worker = await connection.channel()
        await worker.set_qos(prefetch_count=WORKERS)
        queue = await worker.declare_queue(
            _name("raw"), durable=True, arguments={"x-queue-type": "quorum"}
        )

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            Tick.model_validate_json(message.body)
            await message.ack()
            counter.hit()

        await queue.consume(on_message)
        exchange = publisher.default_exchange
        seconds = await _sending(
            count, lambda: exchange.publish(_raw_message(), queue.name), counter.done, senders
        )
    await _delete_queues(queue.name)
    return throughput(_case("rabbitmq work pool", senders), "raw aio-pika", count, seconds)


async def raw_rpc(count: int) -> list[Result]:
    """The client as in RabbitMQ's RPC tutorial (aio-pika version), typed like the rest."""
    queue = _name("raw")
    async with (
        await aio_pika.connect_robust(URL) as connection,
        rpc.server("benchmarks.rabbitmq_cases", "raw", queue),
    ):
        call = await _raw_client(connection, queue)
        return await rpc.results("rabbitmq", "raw aio-pika", count, call)


async def serve_raw(queue: str) -> None:
    """The server as in RabbitMQ's RPC tutorial, with a prefetch of 64."""
    async with await aio_pika.connect_robust(URL) as connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=IN_FLIGHT)
        requests = await channel.declare_queue(queue, auto_delete=True)

        async def serve(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            tick = Tick.model_validate_json(message.body)
            reply = aio_pika.Message(
                tick.model_dump_json().encode(),
                content_type="application/json",
                correlation_id=message.correlation_id,
            )
            await channel.default_exchange.publish(reply, routing_key=message.reply_to or "")
            await message.ack()

        await requests.consume(serve)
        await rpc.serve_until_stdin_closes()


async def _raw_client(
    connection: aio_pika.abc.AbstractConnection, queue: str
) -> Callable[[], Awaitable[Tick]]:
    channel = await connection.channel()
    callbacks = await channel.declare_queue(exclusive=True)
    futures: dict[str, asyncio.Future[bytes]] = {}

    async def on_reply(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        future = futures.pop(message.correlation_id or "", None)
        if future is not None:
            future.set_result(message.body)

    await callbacks.consume(on_reply, no_ack=True)

    async def call() -> Tick:
        correlation_id = uuid.uuid4().hex
        future = futures[correlation_id] = asyncio.get_running_loop().create_future()
        message = _raw_message(correlation_id=correlation_id, reply_to=callbacks.name)
        message.delivery_mode = aio_pika.DeliveryMode.NOT_PERSISTENT
        await channel.default_exchange.publish(message, routing_key=queue)
        return Tick.model_validate_json(await asyncio.wait_for(future, 5))

    return call


# -- FastStream ------------------------------------------------------------------------------------


def _faststream() -> Any:
    try:
        import faststream.rabbit as fs
    except ImportError:
        return None
    return fs


async def faststream_pubsub(count: int, senders: int = 1) -> Result | None:
    fs = _faststream()
    if fs is None:
        return None
    broker, counter = fs.RabbitBroker(URL, logger=None), Counter(count)
    exchange = fs.RabbitExchange(_name("fs"), type=fs.ExchangeType.TOPIC, auto_delete=True)
    queue = fs.RabbitQueue(_name("fs"), auto_delete=True, routing_key="ticks")

    @broker.subscriber(queue, exchange, channel=fs.Channel(prefetch_count=EVENT_PREFETCH))
    async def on_tick(tick: Tick) -> None:
        counter.hit()

    async with broker:
        await broker.start()
        send = lambda: broker.publish(TICK, exchange=exchange, routing_key="ticks", persist=True)  # noqa: E731
        seconds = await _sending(count, send, counter.done, senders)
    return throughput(_case("rabbitmq pub-sub", senders), "faststream", count, seconds)


async def faststream_workpool(count: int, senders: int = 1) -> Result | None:
    fs = _faststream()
    if fs is None:
        return None
    broker, counter = fs.RabbitBroker(URL, logger=None), Counter(count)
    queue = fs.RabbitQueue(_name("fs"), durable=True, arguments={"x-queue-type": "quorum"})

    @broker.subscriber(queue, channel=fs.Channel(prefetch_count=WORKERS))
    async def work(tick: Tick) -> None:
        counter.hit()

    async with broker:
        await broker.start()
        send = lambda: broker.publish(TICK, queue=queue, persist=True)  # noqa: E731
        seconds = await _sending(count, send, counter.done, senders)
    await _delete_queues(queue.name)
    return throughput(_case("rabbitmq work pool", senders), "faststream", count, seconds)


async def faststream_rpc(count: int) -> list[Result]:
    fs = _faststream()
    if fs is None:
        return []
    broker, queue = fs.RabbitBroker(URL, logger=None), _name("fs")

    async def call() -> Tick:
        reply = await broker.request(TICK, queue=queue, timeout=5)
        return Tick.model_validate_json(reply.body)

    async with broker, rpc.server("benchmarks.rabbitmq_cases", "faststream", queue):
        await broker.start()
        return await rpc.results("rabbitmq", "faststream", count, call)


async def serve_faststream(queue: str) -> None:
    fs = _faststream()
    broker = fs.RabbitBroker(URL, logger=None)

    @broker.subscriber(
        fs.RabbitQueue(queue, auto_delete=True), channel=fs.Channel(prefetch_count=IN_FLIGHT)
    )
    async def quote(tick: Tick) -> Tick:
        return tick

    async with broker:
        await broker.start()
        await rpc.serve_until_stdin_closes()


# -- RPC servers, each in a process of its own ------------------------------------------------


SERVERS: dict[str, Callable[[str], Awaitable[None]]] = {
    "pigeon": serve_pigeon,
    "raw": serve_raw,
    "faststream": serve_faststream,
}


# -- the suite ----------------------------------------------------------------------------------


CASES: list[tuple[Callable[[int], Awaitable[Any]], int]] = [
    (pigeon_pubsub, 10),
    (raw_pubsub, 10),
    (faststream_pubsub, 10),
    (pigeon_workpool, 10),
    (raw_workpool, 10),
    (faststream_workpool, 10),
    (partial(pigeon_pubsub, senders=SENDERS), 5),
    (partial(raw_pubsub, senders=SENDERS), 5),
    (partial(faststream_pubsub, senders=SENDERS), 5),
    (partial(pigeon_workpool, senders=SENDERS), 5),
    (partial(raw_workpool, senders=SENDERS), 5),
    (partial(faststream_workpool, senders=SENDERS), 5),
    (pigeon_rpc, 1),
    (raw_rpc, 1),
    (faststream_rpc, 1),
]
"""Each case with the divisor of ``count`` it runs on."""


async def run(count: int) -> list[Result]:
    """Every case, the median of interleaved rounds, with the per-round ratios printed."""
    return await ratios.rounds(CASES, count)


if __name__ == "__main__":
    asyncio.run(SERVERS[sys.argv[1]](sys.argv[2]))
