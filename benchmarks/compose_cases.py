"""Composition overhead: memory and NATS pub-sub and the NATS work pool, each with no middleware,
with one no-op middleware (``handle`` and ``send``), and with one (sync) dependency.

``python -m benchmarks.run --only compose``. The three variants of a case run interleaved, so
their ratios come from the same minutes of a shared machine.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from benchmarks.common import Result, Stopwatch, throughput
from benchmarks.nats_cases import (
    IN_FLIGHT,
    TICK,
    Tick,
    _delete_streams,
    _produce,
    _rounds,
    nats_server,
)
from pigeon import App, Depends, Message
from pigeon.middleware import CallNext

VARIANTS = ("none", "middleware", "dependency")


class NoOp:
    """A middleware that only passes messages on, both ways."""

    async def handle(self, message: Message, call_next: CallNext) -> Any:
        return await call_next(message)

    async def send(self, message: Message, call_next: CallNext) -> Any:
        return await call_next(message)


def settings() -> int:
    """A dependency as cheap as one can be: what is left is pigeon's cost of resolving it."""
    return 1


def _app(url: str, variant: str) -> App:
    return App(url, middleware=[NoOp()] if variant == "middleware" else [])


def _handler(variant: str, on_one: Any) -> Any:
    if variant == "dependency":

        async def with_dependency(tick: Tick, n: Annotated[int, Depends(settings)]) -> None:
            on_one()

        return with_dependency

    async def plain(tick: Tick) -> None:
        on_one()

    return plain


async def pubsub(url: str, count: int, variant: str, case: str) -> list[Result]:
    """``count`` events published and received by one App."""
    app, done, received = _app(url, variant), asyncio.Event(), 0

    def one() -> None:
        nonlocal received
        received += 1
        if received == count:
            done.set()

    subject = f"bench.compose.{variant}"
    app.subscribe(subject)(_handler(variant, one))
    async with app:
        with Stopwatch() as sw:
            for _ in range(count):
                await app.publish(subject, TICK)
            await asyncio.wait_for(done.wait(), 300)
    return [throughput(case, f"pigeon, {variant}", count, sw.seconds)]


async def workpool(url: str, count: int, variant: str) -> list[Result]:
    """64 producers enqueueing, one worker of concurrency 64, as ``nats_cases``."""
    app, done = _app(url, variant), asyncio.Event()
    handled, total = 0, count // IN_FLIGHT * IN_FLIGHT

    def one() -> None:
        nonlocal handled
        handled += 1
        if handled == total:
            done.set()

    queue = f"bench.compose.{variant}"
    app.worker(queue, concurrency=IN_FLIGHT)(_handler(variant, one))
    async with app:
        with Stopwatch() as sw:
            await _produce(lambda: app.enqueue(queue, TICK), count)
            await done.wait()
    stream = queue.replace(".", "_")
    await _delete_streams(url, f"PIGEON_Q_{stream}", f"PIGEON_DLQ_{stream}")
    return [throughput("nats work pool", f"pigeon, {variant}", total, sw.seconds)]


def _variants(case: Any) -> list[Any]:
    return [lambda url, n, v=v: case(url, n, v) for v in VARIANTS]


async def run(count: int) -> list[Result]:
    """Every case, each variant interleaved with the others, median of the rounds."""
    results = await _rounds(
        _variants(lambda url, n, v: pubsub(f"memory://bench-{v}", n, v, "memory pub-sub")),
        "",
        count,
    )
    async with nats_server() as url:
        results += await _rounds(
            _variants(lambda url, n, v: pubsub(url, n, v, "nats pub-sub")), url, count
        )
        results += await _rounds(_variants(workpool), url, max(1000, count // 10))
    return results
