"""Redis: pigeon beside raw redis-py doing the same work by hand, and FastStream 0.7's Redis broker.

Every implementation does the same work in the same run: encode a pydantic model to JSON, send it,
decode and validate it on the other side. The server is ``PIGEON_BENCH_REDIS_URL`` (default
``redis://127.0.0.1:6379/0``); every key a case makes starts with ``bench-<hex>:`` and is deleted
afterwards.

- ``pub-sub``: ``count // 10`` events published one after another to one subscriber (Pub/Sub),
  msg/s end to end (first publish to last event handled).
- ``work pool``: the same with jobs on a stream read through a consumer group by one worker of
  concurrency 16, acknowledged (and, for pigeon and raw, deleted) after the handler.
- ``rpc sequential``: p50 and p99 of ``count // 50`` requests, one after another.
- ``rpc 64 in flight``: ``count // 10`` requests from 64 concurrent callers, requests/s.

Raw redis-py does by hand what pigeon does: ``PUBLISH``/``SUBSCRIBE`` for events; ``XADD``, then
``XREADGROUP`` for free slots and ``XACK`` + ``XDEL`` for jobs; requests ``XADD``ed to a stream
read by the server's consumer group, replies ``PUBLISH``ed to the caller's channel, matched by
correlation id. FastStream publishes events on a channel, jobs on a stream with a consumer group,
and requests on a channel (its replies come back on a channel too). RPC servers run in a process
of their own (``python -m benchmarks.redis_cases <impl> <name>``). Cases take turns within each of
three rounds and the best round counts.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from pydantic import BaseModel
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from benchmarks import rpc
from benchmarks.common import Result, Stopwatch, throughput
from pigeon import App

BASE_URL = os.environ.get("PIGEON_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PREFIX = os.environ.setdefault("PIGEON_BENCH_REDIS_PREFIX", f"bench-{uuid.uuid4().hex[:6]}:")
"""The key prefix of this run, inherited by its RPC server processes."""
URL = f"{BASE_URL}?prefix={PREFIX}"
WORKERS = 16
IN_FLIGHT = rpc.IN_FLIGHT


class Tick(BaseModel):
    symbol: str
    price: float
    volume: int


TICK = Tick(symbol="PGN", price=12.5, volume=300)


def _name(kind: str) -> str:
    return f"bench.{kind}.{uuid.uuid4().hex[:8]}"


def _key(name: str) -> str:
    return f"{PREFIX}{name}"


async def _delete_keys() -> None:
    client = Redis.from_url(BASE_URL)
    keys = [key async for key in client.scan_iter(match=f"{PREFIX}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


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


async def _sequential(count: int, send: Callable[[], Awaitable[Any]], done: asyncio.Event) -> float:
    with Stopwatch() as sw:
        for _ in range(count):
            await send()
        await done.wait()
    return sw.seconds


# -- pigeon ----------------------------------------------------------------------------------------


async def pigeon_pubsub(count: int) -> Result:
    app, subject = App(URL), _name("pigeon")
    counter = Counter(count)

    @app.subscribe(subject)
    async def on_tick(tick: Tick) -> None:
        counter.hit()

    async with app:
        seconds = await _sequential(count, lambda: app.publish(subject, TICK), counter.done)
    return throughput("redis pub-sub", "pigeon", count, seconds)


async def pigeon_workpool(count: int) -> Result:
    app, queue = App(URL), _name("pigeon")
    counter = Counter(count)

    @app.worker(queue, concurrency=WORKERS)
    async def work(tick: Tick) -> None:
        counter.hit()

    async with app:
        seconds = await _sequential(count, lambda: app.enqueue(queue, TICK), counter.done)
    return throughput("redis work pool", "pigeon", count, seconds)


async def pigeon_rpc(count: int) -> list[Result]:
    client, subject = App(URL), _name("pigeon")

    async def call() -> Tick:
        reply: Tick = await client.request(subject, TICK, reply=Tick)
        return reply

    async with rpc.server("benchmarks.redis_cases", "pigeon", subject), client:
        return await rpc.results("redis", "pigeon", count, call)


async def serve_pigeon(subject: str) -> None:
    server = App(URL)

    @server.rpc(subject)
    async def quote(tick: Tick) -> Tick:
        return tick

    async with server:
        await rpc.serve_until_stdin_closes()


# -- raw redis-py ----------------------------------------------------------------------------------


async def raw_pubsub(count: int) -> Result:
    counter = Counter(count)
    client, channel = Redis.from_url(BASE_URL), _key(_name("raw"))
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    await pubsub.get_message(timeout=5)  # the subscribe confirmation

    async def listen() -> None:
        async for message in pubsub.listen():
            if message["type"] == "message":
                Tick.model_validate_json(message["data"])
                counter.hit()

    listener = asyncio.create_task(listen())
    send = lambda: client.publish(channel, TICK.model_dump_json())  # noqa: E731
    seconds = await _sequential(count, send, counter.done)
    listener.cancel()
    with suppress(asyncio.CancelledError):
        await listener
    await pubsub.aclose()
    await client.aclose()
    return throughput("redis pub-sub", "raw redis-py", count, seconds)


async def raw_workpool(count: int) -> Result:
    counter = Counter(count)
    client, stream = Redis.from_url(BASE_URL), _key(_name("raw"))
    await client.xgroup_create(stream, "workers", id="0", mkstream=True)

    async def handle(entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        Tick.model_validate_json(fields[b"body"])
        async with client.pipeline(transaction=True) as pipe:
            pipe.xack(stream, "workers", entry_id)
            pipe.xdel(stream, entry_id)
            await pipe.execute()
        counter.hit()

    async def work() -> None:
        running: set[asyncio.Task[None]] = set()
        while True:
            free = WORKERS - len(running)
            if free <= 0:
                _, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                continue
            read = await client.xreadgroup("workers", "w1", {stream: ">"}, count=free, block=1000)
            for _, entries in read or ():
                for entry_id, fields in entries:
                    running.add(asyncio.create_task(handle(entry_id, fields)))
            running = {task for task in running if not task.done()}

    worker = asyncio.create_task(work())
    send = lambda: client.xadd(stream, {"body": TICK.model_dump_json()})  # noqa: E731
    seconds = await _sequential(count, send, counter.done)
    worker.cancel()
    with suppress(asyncio.CancelledError):
        await worker
    await client.aclose()
    return throughput("redis work pool", "raw redis-py", count, seconds)


async def raw_rpc(count: int) -> list[Result]:
    """A caller that adds requests to the server's stream and takes replies from a channel of its
    own, one future per correlation id (what pigeon does, by hand)."""
    name = _key(_name("raw"))
    client = Redis.from_url(BASE_URL)
    inbox = _key(f"inbox.{uuid.uuid4().hex}")
    futures: dict[str, asyncio.Future[bytes]] = {}
    pubsub = client.pubsub()
    await pubsub.subscribe(inbox)
    await pubsub.get_message(timeout=5)

    async def listen() -> None:
        async for message in pubsub.listen():
            if message["type"] == "message":
                reply = json.loads(message["data"])
                future = futures.pop(reply["id"], None)
                if future is not None:
                    future.set_result(reply["body"].encode())

    async def call() -> Tick:
        correlation_id = uuid.uuid4().hex
        future = futures[correlation_id] = asyncio.get_running_loop().create_future()
        request = {"body": TICK.model_dump_json(), "id": correlation_id, "reply_to": inbox}
        await client.xadd(name, request, maxlen=10_000, approximate=True)
        return Tick.model_validate_json(await asyncio.wait_for(future, 5))

    listener = asyncio.create_task(listen())
    try:
        async with rpc.server("benchmarks.redis_cases", "raw", name):
            return await rpc.results("redis", "raw redis-py", count, call)
    finally:
        listener.cancel()
        with suppress(asyncio.CancelledError):
            await listener
        await pubsub.aclose()
        await client.aclose()


async def serve_raw(name: str) -> None:
    """Read requests through a consumer group (``NOACK``), up to 64 at once; publish each reply."""
    client = Redis.from_url(BASE_URL)
    with suppress(ResponseError):
        await client.xgroup_create(name, "servers", id="$", mkstream=True)
    running: set[asyncio.Task[None]] = set()

    async def answer(fields: dict[bytes, bytes]) -> None:
        tick = Tick.model_validate_json(fields[b"body"])
        reply = json.dumps({"id": fields[b"id"].decode(), "body": tick.model_dump_json()})
        await client.publish(fields[b"reply_to"], reply)

    async def serve() -> None:
        nonlocal running
        while True:
            running = {task for task in running if not task.done()}
            free = IN_FLIGHT - len(running)
            if free <= 0:
                await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                continue
            read = await client.xreadgroup(
                "servers", "s1", {name: ">"}, count=free, block=1000, noack=True
            )
            for _, entries in read or ():
                for _, fields in entries:
                    running.add(asyncio.create_task(answer(fields)))

    server = asyncio.create_task(serve())
    await rpc.serve_until_stdin_closes()
    server.cancel()


# -- FastStream ------------------------------------------------------------------------------------


def _faststream() -> Any:
    try:
        import faststream.redis as fs
    except ImportError:
        return None
    return fs


async def faststream_pubsub(count: int) -> Result | None:
    fs = _faststream()
    if fs is None:
        return None
    broker, counter, channel = fs.RedisBroker(BASE_URL, logger=None), Counter(count), _key("fs")

    @broker.subscriber(channel=channel)
    async def on_tick(tick: Tick) -> None:
        counter.hit()

    async with broker:
        await broker.start()
        send = lambda: broker.publish(TICK, channel=channel)  # noqa: E731
        seconds = await _sequential(count, send, counter.done)
    return throughput("redis pub-sub", "faststream", count, seconds)


async def faststream_workpool(count: int) -> Result | None:
    fs = _faststream()
    if fs is None:
        return None
    broker, counter, stream = fs.RedisBroker(BASE_URL, logger=None), Counter(count), _key("fs")

    @broker.subscriber(stream=fs.StreamSub(stream, group="workers", consumer="w1"))
    async def work(tick: Tick) -> None:
        counter.hit()

    async with broker:
        await broker.start()
        send = lambda: broker.publish(TICK, stream=stream)  # noqa: E731
        seconds = await _sequential(count, send, counter.done)
    return throughput("redis work pool", "faststream", count, seconds)


async def faststream_rpc(count: int) -> list[Result]:
    fs = _faststream()
    if fs is None:
        return []
    # FastStream subscribes a connection of its own to each request's reply channel
    broker = fs.RedisBroker(BASE_URL, logger=None, max_connections=4 * IN_FLIGHT)
    channel = _key(_name("fs"))

    async def call() -> Tick:
        reply = await broker.request(TICK, channel=channel, timeout=5)
        return Tick.model_validate_json(reply.body)

    async with broker, rpc.server("benchmarks.redis_cases", "faststream", channel):
        await broker.start()
        return await rpc.results("redis", "faststream", count, call)


async def serve_faststream(channel: str) -> None:
    fs = _faststream()
    broker = fs.RedisBroker(BASE_URL, logger=None)

    @broker.subscriber(channel=channel)
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
    (pigeon_rpc, 1),
    (raw_rpc, 1),
    (faststream_rpc, 1),
]
"""Each case with the divisor of ``count`` it runs on."""


async def run(count: int) -> list[Result]:
    """Every case, the median of interleaved rounds (``rpc.rounds``); the keys deleted after."""
    try:
        return await rpc.rounds(CASES, count)
    finally:
        await _delete_keys()


if __name__ == "__main__":
    asyncio.run(SERVERS[sys.argv[1]](sys.argv[2]))
