"""Function calls and CPU time per message, pigeon beside the raw clients: measures that the
machine's load barely moves, to read beside the wall-clock figures of ``benchmarks.run``.

``python -m benchmarks.calls [--count N] [--only nats,rabbitmq,memory]``. Each case runs its sender
and its receiver in this process (RPC: client and server; one caller, then 64 at once), warms up,
then sends ``N`` messages twice: once timed with ``time.process_time`` (this process's CPU
time, the broker's excluded), once under ``cProfile``, which counts every Python and built-in
call (a coroutine's resumption counts as a call).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
import nats

from benchmarks.memory_cases import TICK as M_TICK
from benchmarks.memory_cases import Tick as MemoryTick
from benchmarks.nats_cases import IN_FLIGHT, TICK, Tick, nats_server
from benchmarks.rabbitmq_cases import URL as AMQP_URL
from benchmarks.rabbitmq_cases import _name
from pigeon import App

try:
    from pigeon.transports.nats.client import PigeonClient
except ImportError:  # a pigeon from before it, measured for comparison
    PigeonClient = None

Send = Callable[[], Awaitable[Any]]
ROUNDS = 3
"""Rounds of the memory case, each pigeon then the bare loop."""


class Received:
    """Counts received messages; ``wait(n)`` returns once ``n`` more have come."""

    def __init__(self) -> None:
        self.count = 0
        self._target = 0
        self._done = asyncio.Event()

    def hit(self) -> None:
        self.count += 1
        if self.count >= self._target:
            self._done.set()

    async def wait(self, more: int, send: Send) -> None:
        self._target = self.count + more
        self._done.clear()
        for _ in range(more):
            await send()
        await asyncio.wait_for(self._done.wait(), 60)


async def per_message(
    send: Send, count: int, received: Received | None = None, callers: int = 1
) -> tuple[float, float]:
    """Calls and CPU microseconds per message while ``count`` messages are sent (and, with
    ``received``, handled); ``callers``: how many send at once (requests in flight)."""
    count = count // callers * callers

    async def burst(n: int) -> None:
        if received is not None:
            await received.wait(n, send)
        elif callers == 1:
            for _ in range(n):
                await send()
        else:
            await asyncio.gather(*(burst_of(n // callers) for _ in range(callers)))

    async def burst_of(n: int) -> None:
        for _ in range(n):
            await send()

    await burst(200)  # warm up
    started = time.process_time()
    await burst(count)
    cpu = (time.process_time() - started) / count * 1e6
    profile = cProfile.Profile()
    profile.enable()
    await burst(count)
    profile.disable()
    calls: float = pstats.Stats(profile).total_calls / count  # type: ignore[attr-defined]
    return calls, cpu


# -- NATS -------------------------------------------------------------------------------------


async def nats_pigeon(url: str, count: int) -> dict[str, tuple[float, float]]:
    app, received = App(url), Received()

    @app.subscribe("calls.pigeon.ticks")
    async def on_tick(tick: Tick) -> None:
        received.hit()

    @app.rpc("calls.pigeon.rpc")
    async def echo(tick: Tick) -> Tick:
        return tick

    async with app:
        pubsub = await per_message(lambda: app.publish("calls.pigeon.ticks", TICK), count, received)
        request = lambda: app.request("calls.pigeon.rpc", TICK, reply=Tick)  # noqa: E731
        rpc = await per_message(request, count)
        in_flight = await per_message(request, count, callers=IN_FLIGHT)
    return {"nats pub-sub": pubsub, "nats rpc": rpc, "nats rpc 64 in flight": in_flight}


async def nats_raw(
    url: str, count: int, headers: bool = False, client: Any = None
) -> dict[str, tuple[float, float]]:
    """By hand with nats-py (``client``: a ``nats.NATS`` of another class, not yet connected)."""
    received = Received()
    if client is None:
        nc = await nats.connect(url)
    else:
        nc = client
        await nc.connect(url)
    sent = 0

    async def on_tick(msg: Any) -> None:
        Tick.model_validate_json(msg.data)
        received.hit()

    async def publish() -> None:
        nonlocal sent
        sent += 1
        extra = {"Nats-Msg-Id": f"{sent:x}", "content-type": "application/json"}
        await nc.publish("calls.raw.ticks", TICK.model_dump_json().encode(), headers=extra)

    async def echo(msg: Any) -> None:
        await msg.respond(Tick.model_validate_json(msg.data).model_dump_json().encode())

    async def request() -> Tick:
        reply = await nc.request("calls.raw.rpc", TICK.model_dump_json().encode(), timeout=5)
        return Tick.model_validate_json(reply.data)

    await nc.subscribe("calls.raw.ticks", cb=on_tick)
    await nc.subscribe("calls.raw.rpc", queue="rpc", cb=echo)
    await nc.flush()
    if headers:
        found = {"nats pub-sub": await per_message(publish, count, received)}
    else:
        plain = lambda: nc.publish("calls.raw.ticks", TICK.model_dump_json().encode())  # noqa: E731
        found = {
            "nats pub-sub": await per_message(plain, count, received),
            "nats rpc": await per_message(request, count),
            "nats rpc 64 in flight": await per_message(request, count, callers=IN_FLIGHT),
        }
    await nc.close()
    return found


# -- memory -----------------------------------------------------------------------------------


async def memory_pigeon(count: int) -> dict[str, tuple[float, float]]:
    """``benchmarks.memory_cases``' pub-sub: publish, and a subscriber of the same App."""
    app, received = App(f"memory://calls-{_name('memory')}"), Received()

    @app.subscribe("calls.ticks")
    async def on_tick(tick: MemoryTick) -> None:
        received.hit()

    async with app:
        return {
            "memory pub-sub": await per_message(
                lambda: app.publish("calls.ticks", M_TICK), count, received
            )
        }


def memory_bare(count: int) -> dict[str, tuple[float, float]]:
    """The limit: ``model_validate_json`` of the same bytes in a loop (calls counted alike)."""
    data = M_TICK.model_dump_json().encode()

    def loop(n: int) -> None:
        for _ in range(n):
            MemoryTick.model_validate_json(data)

    loop(200)
    started = time.process_time()
    loop(count)
    cpu = (time.process_time() - started) / count * 1e6
    profile = cProfile.Profile()
    profile.enable()
    loop(count)
    profile.disable()
    calls: float = pstats.Stats(profile).total_calls / count  # type: ignore[attr-defined]
    return {"memory pub-sub": (calls, cpu)}


async def memory_rounds(count: int) -> list[tuple[str, str, tuple[float, float]]]:
    """``ROUNDS`` alternated rounds of pigeon and the bare loop (drift hits both alike); prints
    the CPU ratio (bare / pigeon) of each round and their median."""
    rows, ratios = [], []
    for _ in range(ROUNDS):
        pigeon = (await memory_pigeon(count))["memory pub-sub"]
        bare = memory_bare(count)["memory pub-sub"]
        rows += [
            ("memory pub-sub", "pigeon", pigeon),
            ("memory pub-sub", "bare validate loop", bare),
        ]
        ratios.append(bare[1] / pigeon[1])
    shown = ", ".join(f"{r:.3f}" for r in ratios)
    print(
        f"memory pub-sub CPU ratio, bare / pigeon: {shown}; median {statistics.median(ratios):.3f}"
    )
    return rows


# -- RabbitMQ ---------------------------------------------------------------------------------


async def rabbitmq_pigeon(count: int) -> dict[str, tuple[float, float]]:
    app, received, subject, queue = App(AMQP_URL), Received(), _name("calls"), _name("calls")

    @app.subscribe(subject)
    async def on_tick(tick: Tick) -> None:
        received.hit()

    @app.worker(queue, concurrency=16)
    async def work(tick: Tick) -> None:
        received.hit()

    async with app:
        pubsub = await per_message(lambda: app.publish(subject, TICK), count, received)
        jobs = await per_message(lambda: app.enqueue(queue, TICK), count, received)
    async with _amqp_channel() as channel:
        await channel.queue_delete(queue)
        await channel.queue_delete(f"{queue}.dlq")
    return {"rabbitmq pub-sub": pubsub, "rabbitmq work pool": jobs}


async def rabbitmq_raw(count: int) -> dict[str, tuple[float, float]]:
    received = Received()
    async with await aio_pika.connect_robust(AMQP_URL) as connection:
        publisher, subscriber = await connection.channel(), await connection.channel()
        await subscriber.set_qos(prefetch_count=32)
        exchange = await publisher.declare_exchange(
            _name("calls"), aio_pika.ExchangeType.TOPIC, auto_delete=True
        )
        queue = await subscriber.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange.name, "ticks")

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            Tick.model_validate_json(message.body)
            await message.ack()
            received.hit()

        await queue.consume(on_message)

        def publish() -> Awaitable[Any]:
            message = aio_pika.Message(
                TICK.model_dump_json().encode(),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            return exchange.publish(message, "ticks")

        return {"rabbitmq pub-sub": await per_message(publish, count, received)}


@asynccontextmanager
async def _amqp_channel() -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    async with await aio_pika.connect(AMQP_URL) as connection:
        yield await connection.channel()


async def main(count: int, only: list[str]) -> None:
    rows: list[tuple[str, str, tuple[float, float]]] = []
    if "nats" in only:
        async with nats_server() as url:
            for impl, found in [
                ("pigeon", await nats_pigeon(url, count)),
                ("raw nats-py", await nats_raw(url, count)),
                ("raw nats-py + 2 headers", await nats_raw(url, count, headers=True)),
            ]:
                rows += [(case, impl, calls) for case, calls in found.items()]
            if PigeonClient is not None:  # the header codec alone, without the rest of pigeon
                found = await nats_raw(url, count, headers=True, client=PigeonClient())
                impl = "raw PigeonClient + 2 headers"
                rows += [(case, impl, calls) for case, calls in found.items()]
    if "memory" in only:
        rows += await memory_rounds(count)
    if "rabbitmq" in only:
        for impl, found in [
            ("pigeon", await rabbitmq_pigeon(count // 10)),
            ("raw aio-pika", await rabbitmq_raw(count // 10)),
        ]:
            rows += [(case, impl, calls) for case, calls in found.items()]
    print(
        f"{'case':<24} {'implementation':<26} {'calls per message':>18} {'CPU us per message':>19}"
    )
    for case, impl, (calls, cpu) in sorted(rows):
        print(f"{case:<24} {impl:<26} {calls:>18.1f} {cpu:>8.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=5000, help="messages per case")
    parser.add_argument("--only", default="nats,rabbitmq", help="nats,rabbitmq,memory")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="rounds of the memory case")
    args = parser.parse_args()
    ROUNDS = args.rounds
    asyncio.run(main(args.count, args.only.split(",")))
