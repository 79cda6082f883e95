"""The scaling suite in ``python -m benchmarks.run --only scaling``; see ``benchmarks.scaling``."""

from __future__ import annotations

from benchmarks.common import Result
from benchmarks.scaling import measure

SIZES = (1, 100, 1_000)


async def run(count: int) -> list[Result]:
    """Each scaling case at 1, 100 and 1,000 subscriptions (rpc: handlers), median of three."""
    results = await measure(SIZES, max(count // 10, 1_000), rounds=3)
    return [
        Result(f"scaling {case.split(' (')[0]}", f"{size:,} subscriptions", value, "us")
        for case, values in results.items()
        for size, value in zip(SIZES, values, strict=True)
    ]
