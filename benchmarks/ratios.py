"""Interleaved rounds that also report, per case, pigeon's ratio to each other implementation in
every round: the median ratio and its spread (lowest, highest), which a shared broker's drift
between rounds moves less than the figures themselves."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from benchmarks import common
from benchmarks.common import Result, median_of
from benchmarks.rpc import Case


def ratio(pigeon: Result, other: Result) -> float:
    """How many times better pigeon is than ``other``: throughput over theirs, or their latency
    over pigeon's."""
    if pigeon.higher_is_better:
        return pigeon.value / other.value
    return other.value / pigeon.value


def ratio_rows(rounds: Sequence[Sequence[Result]]) -> list[str]:
    """One line per case and implementation other than pigeon: median ratio (low-high) and the
    ratio of each round."""
    by_key: dict[tuple[str, str], list[Result]] = {}
    for found in rounds:
        for result in found:
            by_key.setdefault((result.case, result.impl), []).append(result)
    rows = []
    for (case, impl), results in by_key.items():
        pigeon = by_key.get((case, "pigeon"))
        if impl == "pigeon" or pigeon is None or len(pigeon) != len(results):
            continue
        each = [ratio(p, o) for p, o in zip(pigeon, results, strict=True)]
        cells = ", ".join(f"{r:.2f}" for r in each)
        rows.append(
            f"{case:<32} vs {impl:<14} {statistics.median(each):5.2f}"
            f" ({min(each):.2f}-{max(each):.2f}; rounds: {cells})"
        )
    return rows


async def rounds(cases: Sequence[tuple[Case, int]], count: int) -> list[Result]:
    """Every case (with the divisor of ``count`` it runs on), ``common.ROUNDS`` rounds with the
    implementations taking turns; prints the per-round ratios, returns the median rounds."""
    done: list[list[Result]] = []
    for index in range(common.ROUNDS):
        found: list[Result] = []
        for case, divisor in cases:
            common.clean_slate()
            result = await case(count // divisor)
            found.extend(result if isinstance(result, list) else [result] if result else [])
        done.append(found)
        print(f"   round {index + 1} of {common.ROUNDS} done", flush=True)
    print("pigeon's ratio to each implementation, median of the rounds (lowest-highest):")
    for row in ratio_rows(done):
        print(f"  {row}")
    return [median_of([r[index] for r in done]) for index in range(len(done[0]))]
