"""Memory transport: pub-sub throughput beside the bare validation loop (the limit)."""

from __future__ import annotations

from pydantic import BaseModel

from benchmarks.common import Result, Stopwatch, pigeon_pubsub_seconds, throughput
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
    seconds = await pigeon_pubsub_seconds(App("memory://bench-pubsub"), "ticks", Tick, TICK, count)
    return throughput("memory pub-sub", "pigeon", count, seconds)


async def run(count: int) -> list[Result]:
    """Every memory case, best of three rounds, interleaved so drift hits both alike."""
    pigeon: list[Result] = []
    bare: list[Result] = []
    for _ in range(3):
        pigeon.append(await pigeon_pubsub(count))
        bare.append(bare_validation_loop(count))
    return [max(pigeon, key=lambda r: r.value), max(bare, key=lambda r: r.value)]
