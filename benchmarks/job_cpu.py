"""Where a RabbitMQ job's time goes, one job at a time: the broker's confirm, or the client.

``python -m benchmarks.job_cpu [--rounds N]`` prints, for pigeon, raw aio-pika and FastStream
doing the work pool case of ``benchmarks.rabbitmq_cases`` one job at a time, the wall clock and
the client's CPU time (process time) per job, each the difference between a run of 2,500 jobs
and one of 500 (start-up and queue declarations cancel out); then the broker's floor: raw
aio-pika publishing persistent messages to a quorum queue one after another, each awaiting its
confirm, with no consumer. The broker is ``PIGEON_BENCH_AMQP_URL`` (as in ``rabbitmq_cases``).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika

from benchmarks import rabbitmq_cases as cases

IMPLEMENTATIONS: dict[str, Callable[[int], Awaitable[Any]]] = {
    "pigeon": cases.pigeon_workpool,
    "raw aio-pika": cases.raw_workpool,
    "faststream": cases.faststream_workpool,
}
SHORT, LONG = 500, 2500


async def _timed(case: Callable[[int], Awaitable[Any]], jobs: int) -> tuple[float, float]:
    """(wall seconds, client CPU seconds) of ``case`` with ``jobs`` jobs."""
    cpu, wall = time.process_time(), time.perf_counter()
    await case(jobs)
    return time.perf_counter() - wall, time.process_time() - cpu


async def per_job(case: Callable[[int], Awaitable[Any]]) -> tuple[float, float]:
    """Microseconds of wall clock and of client CPU per job, start-up cancelled out."""
    short_wall, short_cpu = await _timed(case, SHORT)
    long_wall, long_cpu = await _timed(case, LONG)
    scale = 1e6 / (LONG - SHORT)
    return (long_wall - short_wall) * scale, (long_cpu - short_cpu) * scale


async def confirm_floor(messages: int = 1000) -> float:
    """Microseconds per persistent publish to a quorum queue, awaiting each confirm."""
    async with await aio_pika.connect(cases.URL) as connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(
            cases._name("floor"), durable=True, arguments={"x-queue-type": "quorum"}
        )
        started = time.perf_counter()
        for _ in range(messages):
            await channel.default_exchange.publish(cases._raw_message(), queue.name)
        took = time.perf_counter() - started
        await channel.queue_delete(queue.name)
    return took / messages * 1e6


async def main(rounds: int) -> None:
    for round_ in range(1, rounds + 1):
        for name, case in IMPLEMENTATIONS.items():
            wall, cpu = await per_job(case)
            print(f"round {round_}  {name:13s} wall {wall:6.0f} us/job  client CPU {cpu:5.0f} us")
    print(f"broker's confirm, no consumer: {await confirm_floor():.0f} us per message")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    asyncio.run(main(parser.parse_args().rounds))
