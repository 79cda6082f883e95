"""What every benchmark case reports, and the table they are printed in."""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pigeon import App


@dataclass(frozen=True)
class Result:
    """One measurement: ``value`` in ``unit`` for ``impl`` (pigeon, raw client, FastStream, ...)."""

    case: str
    impl: str
    value: float
    unit: str

    @property
    def higher_is_better(self) -> bool:
        return self.unit.endswith("/s")


def throughput(case: str, impl: str, count: int, seconds: float) -> Result:
    """A messages-per-second result."""
    return Result(case, impl, count / seconds, "msg/s")


def latencies(case: str, impl: str, samples: Sequence[float]) -> list[Result]:
    """p50 and p99 results, in milliseconds, from per-call durations in seconds."""
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return [
        Result(f"{case} p50", impl, p50 * 1000, "ms"),
        Result(f"{case} p99", impl, p99 * 1000, "ms"),
    ]


ROUNDS = 3
"""Interleaved rounds of each case (``python -m benchmarks.run --rounds N``); the median counts."""


def clean_slate() -> None:
    """Collect every generation before a case, so that no case pays for the garbage of the one
    before it. A full collection takes 10-15 ms in a benchmark process with every client loaded
    and comes when the objects promoted since the last one pass a quarter of the oldest
    generation: left alone, it falls in whichever case follows the one that promoted most, and
    stalls every request in flight there (docs/benchmarks.md, "Session 11")."""
    gc.collect()


def median_of(candidates: Sequence[Result]) -> Result:
    """The round whose value is the median of ``candidates`` (the lower middle one when even)."""
    ordered = sorted(candidates, key=lambda r: r.value)
    return ordered[(len(ordered) - 1) // 2]


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds``."""

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start


def print_table(results: Sequence[Result]) -> None:
    """Print results grouped by case, each beside the first implementation of that case as 1.00."""
    cases: dict[str, list[Result]] = {}
    for result in results:
        cases.setdefault(result.case, []).append(result)
    print(f"{'case':<36} {'implementation':<22} {'value':>14}  {'unit':<6} {'vs pigeon':>9}")
    for case, rows in cases.items():
        pigeon = next((r for r in rows if r.impl == "pigeon"), rows[0])  # else the first row
        for row in rows:
            ratio = pigeon.value / row.value if row.value else float("nan")
            if not row.higher_is_better:
                ratio = 1 / ratio if ratio else float("nan")
            print(f"{case:<36} {row.impl:<22} {row.value:>14,.2f}  {row.unit:<6} {ratio:>8.3f}x")
    print("vs pigeon: how many times better pigeon (or a case's first row) is than that row")


async def pigeon_pubsub_seconds(
    app: App, subject: str, body_type: Any, sample: Any, count: int
) -> float:
    """Seconds for ``app`` to publish ``count`` copies of ``sample`` on ``subject`` and for a
    subscriber of its own, whose body is annotated ``body_type``, to receive every one."""
    done = asyncio.Event()
    received = 0

    async def on_event(body: Any) -> None:
        nonlocal received
        received += 1
        if received == count:
            done.set()

    on_event.__annotations__["body"] = body_type
    app.subscribe(subject)(on_event)
    async with app:
        with Stopwatch() as sw:
            for _ in range(count):
                await app.publish(subject, sample)
            await asyncio.wait_for(done.wait(), 300)
    return sw.seconds
