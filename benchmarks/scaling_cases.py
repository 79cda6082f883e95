"""The scaling suite in ``python -m benchmarks.run --only scaling``; see ``benchmarks.scaling``."""

from __future__ import annotations

from benchmarks import scaling_load, scaling_workers
from benchmarks.common import Result
from benchmarks.scaling import measure

SIZES = (1, 100, 1_000)


async def run(count: int) -> list[Result]:
    """Each scaling case at 1, 100 and 1,000 subscriptions (rpc: handlers), the load rows at their
    levels, ``pigeon run --workers 1`` and ``2`` (median of three), and resident memory."""
    events = max(count // 10, 1_000)
    results = await measure(SIZES, events, rounds=3)
    rows = [
        Result(f"scaling {case.split(' (')[0]}", f"{size:,} subscriptions", value, "us")
        for case, values in results.items()
        for size, value in zip(SIZES, values, strict=True)
    ]
    load = await scaling_load.measure(events, rounds=3)
    for row, values in load.items():
        levels = scaling_load.IN_FLIGHT if row.startswith("rpc") else scaling_load.CONCURRENCY
        name, unit = row.rstrip(")").split(" (")
        what = "in flight" if row.startswith("rpc") else "concurrency"
        rows += [
            Result(f"scaling {name}", f"{what} {level}", value, unit)
            for level, value in zip(levels, values, strict=True)
        ]
    workers = await scaling_workers.measure(max(count // 50, 1_000), rounds=3)
    for row, values in workers.items():
        name, unit = row.rstrip(")").split(" (")
        rows += [
            Result(f"scaling {name}", f"{n} worker process(es)", value, unit)
            for n, value in zip(scaling_workers.WORKERS, values, strict=True)
        ]
    short = ("1M distinct subjects", "1M burst, peak", "1,000 handlers")
    for name, grown in zip(short, scaling_load.rss_rows().values(), strict=True):
        rows.append(Result("scaling RSS growth", name, grown["mib"], "MiB"))
    return rows
