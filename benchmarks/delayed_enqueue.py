"""Enqueue throughput with ``delay=`` against without, on each broker (issue 17).

    python -m benchmarks.delayed_enqueue [--jobs 2000] [nats://... amqp://... redis://...]

Each run enqueues ``--jobs`` jobs on a fresh queue, 100 in flight at a time (every ``enqueue``
waits for the broker's confirm), once without a delay and once with ``delay=2``, and prints jobs
per second of the enqueueing alone; then a worker drains the queue, so that no job is left behind
(the queues themselves are, empty, as after any run).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from pigeon import App

DEFAULT_URLS = (
    "memory://bench",
    "nats://127.0.0.1:4222",
    "amqp://guest:guest@127.0.0.1:5672/",
    "redis://127.0.0.1:6379/0?prefix=pigeon-bench:",
)


async def rate(url: str, jobs: int, delay: float | None) -> float:
    """Jobs per second enqueued on ``url`` with ``delay``; the jobs are drained afterwards."""
    queue = f"bench.delay.{uuid.uuid4().hex[:8]}"
    async with App(url) as app:
        await app.enqueue(queue, {"n": -1}, delay=delay)  # declares the queue (and the ladder)
        started = time.perf_counter()
        for start in range(0, jobs, 100):
            batch = range(start, min(start + 100, jobs))
            await asyncio.gather(*(app.enqueue(queue, {"n": n}, delay=delay) for n in batch))
        seconds = time.perf_counter() - started
        await drain(url, queue, jobs + 1)
    return jobs / seconds


async def drain(url: str, queue: str, count: int) -> None:
    """Handle the ``count`` jobs of ``queue`` (within a minute)."""
    worker = App(url)
    done = asyncio.Event()
    handled = 0

    @worker.worker(queue, concurrency=64)
    async def consume(job: dict[str, int]) -> None:
        nonlocal handled
        handled += 1
        if handled == count:
            done.set()

    async with worker:
        await asyncio.wait_for(done.wait(), 60)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("urls", nargs="*", default=DEFAULT_URLS)
    parser.add_argument("--jobs", type=int, default=2000)
    args = parser.parse_args()
    print(f"{'broker':<10} {'no delay':>12} {'delay=2':>12}   jobs/s, {args.jobs} jobs")
    for url in args.urls:
        plain = await rate(url, args.jobs, None)
        delayed = await rate(url, args.jobs, 2)
        print(f"{url.split(':')[0]:<10} {plain:>12,.0f} {delayed:>12,.0f}")


if __name__ == "__main__":
    asyncio.run(main())
