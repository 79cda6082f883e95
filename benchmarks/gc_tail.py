"""The NATS 512-in-flight p99 and the garbage collector: which windows met a full collection.

``python -m benchmarks.gc_tail [--rounds N]`` runs the RPC case of ``benchmarks.nats_cases``
with 512 callers (6,144 requests a window), pigeon and raw nats-py in turn, and prints each
window's p50 and p99 beside the collections made in it (``gc.callbacks``: how many of each
generation, and how long each full one took); then how many objects the collector tracks per
request in flight, counted with ``gc.get_objects()`` while 512 requests wait for a held server.
Needs ``PIGEON_BENCH_NATS_URL`` or a NATS server on 127.0.0.1:4222.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import nats

from benchmarks.nats_cases import TICK, Tick, _in_flight
from pigeon import App

URL = os.environ.get("PIGEON_BENCH_NATS_URL", "nats://127.0.0.1:4222")
CALLERS, REQUESTS = 512, 6144
Request = Callable[[], Awaitable[Any]]


class Collections:
    """The collections made while it is installed: (generation, milliseconds)."""

    def __init__(self) -> None:
        self.made: list[tuple[int, float]] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.made.append((info["generation"], (time.perf_counter() - self._started) * 1e3))

    def summary(self) -> str:
        full = [f"{ms:.1f}" for generation, ms in self.made if generation == 2]
        young = sum(generation == 0 for generation, _ in self.made)
        return f"full {len(full)} ({', '.join(full) or '-'} ms), young {young}"


async def window(request: Request) -> str:
    """One window of ``REQUESTS`` from ``CALLERS`` callers: p50, p99, collections."""
    watch = Collections()
    gc.callbacks.append(watch)
    try:
        _, samples = await _in_flight(request, REQUESTS, CALLERS)
    finally:
        gc.callbacks.remove(watch)
    samples.sort()
    p50, p99 = (samples[int(q * len(samples))] * 1e3 for q in (0.5, 0.99))
    return f"p50 {p50:5.1f} ms  p99 {p99:5.1f} ms  {watch.summary()}"


async def tracked_per_request(request: Request, release: asyncio.Event, subject: str) -> float:
    """Objects the collector tracks per request while ``CALLERS`` wait on a held server; an
    observer on another connection tells when the server has routed every request."""
    observer = await nats.connect(URL)
    seen, routed = 0, asyncio.Event()

    async def count(msg: Any) -> None:
        nonlocal seen
        seen += 1
        if seen == CALLERS:
            routed.set()

    await observer.subscribe(subject, cb=count)
    await observer.flush()
    gc.collect()
    before = len(gc.get_objects())
    waiting = [asyncio.ensure_future(request()) for _ in range(CALLERS)]
    async with asyncio.timeout(30):
        await routed.wait()
    gc.collect()
    during = len(gc.get_objects())
    release.set()
    await asyncio.gather(*waiting)
    await observer.close()
    return (during - before) / CALLERS


async def pigeon(rounds: int) -> None:
    release = asyncio.Event()
    release.set()
    app = App(URL)

    @app.rpc("bench.gc_tail.pigeon")
    async def echo(tick: Tick) -> Tick:
        await release.wait()
        return tick

    async with app:

        async def request() -> Tick:
            return await app.request("bench.gc_tail.pigeon", TICK, reply=Tick, timeout=30)

        # pigeon's requests travel under its rpc prefix (docs/wire.md)
        await _report("pigeon", request, release, rounds, "_PIGEON.RPC.bench.gc_tail.pigeon")


async def raw(rounds: int) -> None:
    release = asyncio.Event()
    release.set()
    client = await nats.connect(URL)

    async def echo(msg: Any) -> None:
        await release.wait()
        await msg.respond(Tick.model_validate_json(msg.data).model_dump_json().encode())

    async def request() -> Tick:
        reply = await client.request("bench.gc_tail.raw", TICK.model_dump_json().encode(), 30)
        return Tick.model_validate_json(reply.data)

    await client.subscribe("bench.gc_tail.raw", queue="rpc", cb=echo)
    await client.flush()
    await _report("raw nats-py", request, release, rounds, "bench.gc_tail.raw")
    await client.close()


async def _report(
    name: str, request: Request, release: asyncio.Event, rounds: int, wire_subject: str
) -> None:
    """Print ``rounds`` windows, then the objects tracked per request (``wire_subject``: the
    subject the requests travel on)."""
    for _ in range(200):  # warm up
        await request()
    for round_ in range(1, rounds + 1):
        print(f"{name:12s} window {round_}: {await window(request)}")
    release.clear()
    tracked = await tracked_per_request(request, release, wire_subject)
    print(f"{name:12s} tracked objects per request in flight: {tracked:.1f}")


async def main(rounds: int) -> None:
    await pigeon(rounds)
    await raw(rounds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args().rounds))
