"""The scaling suite's load rows (issue 18), on the memory transport: requests in flight, a work
pool's concurrency, and resident memory (``benchmarks.scaling`` prints and draws them).

- ``rpc``: requests to one rpc handler (its default concurrency, 64) from 1, 64 and 512 callers
  at once: microseconds per request (the inverse of the throughput) and the p99 latency.
- ``work pool``: jobs enqueued one after another to a worker of concurrency 1, 8 and 64, each
  handled at once (microseconds per job: what the machinery costs), or after 1 ms of waiting, as
  for I/O (jobs per second: what concurrency buys).
- RSS, each in a fresh process (``python -m benchmarks.scaling_load --rss CASE``): after
  1,000,000 events on distinct subjects to one wildcard subscriber, the peak during a burst of
  1,000,000 events on one subject published faster than they are handled (bounded queues make the
  producer wait), and with 1,000 subscribers (a handler each) started and each sent one event.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import statistics
import subprocess
import sys
import time
from typing import Any

from pydantic import BaseModel

from pigeon import App

IN_FLIGHT = (1, 64, 512)
CONCURRENCY = (1, 8, 64)
IO_WAIT = 0.001
"""Seconds each job of the I/O-bound work pool waits."""
RSS_EVENTS = 1_000_000
RSS_HANDLERS = 1_000
RSS_CASES = ("distinct", "burst", "handlers")
_apps = itertools.count()


class Tick(BaseModel):
    symbol: str
    price: float
    volume: int


TICK = Tick(symbol="PGN", price=12.5, volume=300)


def _app() -> App:
    return App(f"memory://load-{next(_apps)}")


async def rpc_in_flight(callers: int, requests: int) -> tuple[float, float]:
    """Microseconds per request, and the p99 latency in microseconds, of ``requests`` requests
    (rounded down to a multiple of ``callers``) made by ``callers`` concurrent callers."""
    app = _app()

    @app.rpc("load.rpc")
    async def answer(tick: Tick) -> int:
        return tick.volume

    samples: list[float] = []

    async def caller() -> None:
        for _ in range(requests // callers):
            start = time.perf_counter()
            await app.request("load.rpc", TICK, reply=int)
            samples.append(time.perf_counter() - start)

    async with app:
        for _ in range(50):  # warm up
            await app.request("load.rpc", TICK, reply=int)
        gc.collect()  # not the previous case's App, collected while this one is timed
        start = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(callers)))
        seconds = time.perf_counter() - start
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return seconds / len(samples) * 1e6, p99 * 1e6


async def work_pool(concurrency: int, jobs: int, wait: float = 0.0) -> float:
    """Seconds to enqueue ``jobs`` jobs one after another and have a worker of ``concurrency``
    handle them all, each after ``wait`` seconds of waiting (none: handled at once)."""
    app, handled, done = _app(), 0, asyncio.Event()

    @app.worker("load.jobs", concurrency=concurrency)
    async def work(tick: Tick) -> None:
        nonlocal handled
        if wait:
            await asyncio.sleep(wait)
        handled += 1
        if handled == jobs:
            done.set()

    async with app:
        gc.collect()
        start = time.perf_counter()
        for _ in range(jobs):
            await app.enqueue("load.jobs", TICK)
        await done.wait()
        return time.perf_counter() - start


async def measure(events: int, rounds: int) -> dict[str, list[float]]:
    """Each load row at each level, the median of ``rounds`` interleaved rounds."""
    samples: dict[str, list[list[float]]] = {}

    def add(row: str, index: int, value: float) -> None:
        samples.setdefault(row, [[] for _ in range(3)])[index].append(value)

    requests = max(events // 4 // 512 * 512, 2048)
    io_jobs = max(events // 40, 200)
    for _ in range(rounds):
        for index, callers in enumerate(IN_FLIGHT):
            per_request, p99 = await rpc_in_flight(callers, requests)
            add("rpc (us/request)", index, per_request)
            add("rpc p99 (us)", index, p99)
        for index, concurrency in enumerate(CONCURRENCY):
            seconds = await work_pool(concurrency, events)
            add("work pool (us/job)", index, seconds / events * 1e6)
            seconds = await work_pool(concurrency, io_jobs, IO_WAIT)
            add("work pool, 1 ms I/O (jobs/s)", index, io_jobs / seconds)
    return {row: [statistics.median(s) for s in levels] for row, levels in samples.items()}


# -- resident memory, each case in a process of its own ------------------------------------------


def _status_kib(field: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak) of this process, in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


async def _rss_case(case: str) -> dict[str, float]:
    """Resident memory growth in MiB (``mib``) for ``case`` (see the module docstring), and the
    events it handled per second."""
    app, handled, done = _app(), 0, asyncio.Event()
    patterns = {"distinct": ["d.*.created"], "burst": ["burst"]}.get(case)
    subjects = patterns or [f"h.{i}" for i in range(RSS_HANDLERS)]
    events = RSS_EVENTS if patterns else RSS_HANDLERS
    before = _status_kib("VmRSS")
    for pattern in subjects:

        @app.subscribe(pattern)
        async def on_tick(tick: Tick) -> None:
            nonlocal handled
            handled += 1
            if handled == events:
                done.set()

    async with app:
        start = time.perf_counter()
        for k in range(events):
            subject = {"distinct": f"d.{k}.created", "burst": "burst"}.get(case, f"h.{k}")
            await app.publish(subject, TICK)
        await done.wait()
        seconds = time.perf_counter() - start
        after = _status_kib("VmHWM" if case == "burst" else "VmRSS")
    return {"mib": (after - before) / 1024, "events_per_s": events / seconds}


def rss_in_subprocess(case: str) -> dict[str, float]:
    """Run ``_rss_case`` in a fresh interpreter, so earlier cases do not count."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.scaling_load", "--rss", case],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def rss_rows() -> dict[str, dict[str, Any]]:
    """Every RSS case, each in a process of its own, by label."""
    labels = {
        "distinct": f"RSS after {RSS_EVENTS:,} events on distinct subjects",
        "burst": f"peak RSS, burst of {RSS_EVENTS:,} events",
        "handlers": f"RSS with {RSS_HANDLERS:,} handlers",
    }
    return {labels[case]: rss_in_subprocess(case) for case in RSS_CASES}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rss", choices=RSS_CASES, required=True)
    print(json.dumps(asyncio.run(_rss_case(parser.parse_args().rss))))
