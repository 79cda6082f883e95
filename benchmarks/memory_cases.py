"""Memory transport: pub-sub throughput beside the bare validation loop (the limit)."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel

from benchmarks.common import Result, Stopwatch, throughput
from pigeon import App


class Tick(BaseModel):
    symbol: str
    price: float
    volume: int


TICK = Tick(symbol="PGN", price=12.5, volume=300)


def bare_validation_loop(count: int) -> Result:
    """The limit: only ``model_validate_json`` on the same bytes, nothing else."""
    data = TICK.model_dump_json().encode()
    with Stopwatch() as sw:
        for _ in range(count):
            Tick.model_validate_json(data)
    return throughput("memory pub-sub", "bare validate loop", count, sw.seconds)


async def pigeon_pubsub(count: int) -> Result:
    app = App("memory://bench-pubsub")
    done = asyncio.Event()
    received = 0

    @app.subscribe("ticks")
    async def on_tick(tick: Tick) -> None:
        nonlocal received
        received += 1
        if received == count:
            done.set()

    async with app:
        with Stopwatch() as sw:
            for _ in range(count):
                await app.publish("ticks", TICK)
            await done.wait()
    return throughput("memory pub-sub", "pigeon", count, sw.seconds)


async def run(count: int) -> list[Result]:
    """Every memory case, best of three rounds, interleaved so drift hits both alike."""
    pigeon: list[Result] = []
    bare: list[Result] = []
    for _ in range(3):
        pigeon.append(await pigeon_pubsub(count))
        bare.append(bare_validation_loop(count))
    return [max(pigeon, key=lambda r: r.value), max(bare, key=lambda r: r.value)]
