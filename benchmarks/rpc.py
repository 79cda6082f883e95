"""What the RPC cases of the broker suites share: a server in a process of its own, timed calls,
calls in flight, and the rounds of a suite."""

from __future__ import annotations

import asyncio
import sys
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from benchmarks import common
from benchmarks.common import Result, Stopwatch, latencies, median_of, throughput

IN_FLIGHT = 64
"""Callers at once in the "in flight" RPC cases."""

Case = Callable[[int], Awaitable[Any]]


@asynccontextmanager
async def server(module: str, impl: str, name: str) -> AsyncIterator[None]:
    """Run ``python -m module impl name`` (an RPC server) while the block runs; it says ``ready``
    on stdout once it serves, and stops when its stdin closes."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, impl, name, stdin=PIPE, stdout=PIPE
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        ready = await asyncio.wait_for(process.stdout.readline(), 30)
        if ready.strip() != b"ready":
            raise RuntimeError(f"the {impl} RPC server did not start")
        yield
    finally:
        process.stdin.close()
        await asyncio.wait_for(process.wait(), 30)


async def serve_until_stdin_closes() -> None:
    """In a server process: say ``ready``, then serve until the benchmark closes stdin."""
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def timed_calls(count: int, call: Callable[[], Awaitable[Any]]) -> list[float]:
    """Seconds of each of ``count`` calls made one after the other."""
    loop = asyncio.get_running_loop()
    samples = []
    for _ in range(count):
        start = loop.time()
        await call()
        samples.append(loop.time() - start)
    return samples


async def in_flight(count: int, call: Callable[[], Awaitable[Any]]) -> float:
    """Seconds for ``count`` calls (a multiple of ``IN_FLIGHT``) made by ``IN_FLIGHT`` callers."""

    async def caller() -> None:
        for _ in range(count // IN_FLIGHT):
            await call()

    with Stopwatch() as sw:
        await asyncio.gather(*(caller() for _ in range(IN_FLIGHT)))
    return sw.seconds


async def results(
    broker: str, impl: str, count: int, call: Callable[[], Awaitable[Any]]
) -> list[Result]:
    """Latencies of ``count // 50`` sequential calls and the throughput of ``IN_FLIGHT`` callers,
    after a warm-up (declarations, reply consumers, the server's first requests)."""
    for _ in range(20):
        await call()
    samples = await timed_calls(count // 50, call)
    calls = count // 10 // IN_FLIGHT * IN_FLIGHT
    seconds = await in_flight(calls, call)
    return [
        *latencies(f"{broker} rpc sequential", impl, samples),
        throughput(f"{broker} rpc {IN_FLIGHT} in flight", impl, calls, seconds),
    ]


async def rounds(cases: Sequence[tuple[Case, int]], count: int) -> list[Result]:
    """Every case (with the divisor of ``count`` it runs on), the median of ``common.ROUNDS``
    rounds; the implementations take turns within each round, so that a shared machine's
    changing load falls on all of them alike."""
    done: list[list[Result]] = []
    for _ in range(common.ROUNDS):
        found: list[Result] = []
        for case, divisor in cases:
            result = await case(count // divisor)
            found.extend(result if isinstance(result, list) else [result] if result else [])
        done.append(found)
    return [median_of([r[index] for r in done]) for index in range(len(done[0]))]
