"""A slow worker's memory does not grow with the backlog waiting for it, and nothing is lost when
it is stopped and restarted."""

from __future__ import annotations

from pathlib import Path

from reliability.result import MIB
from reliability.scenarios.slow import slow_consumer
from reliability.targets import Target

BODY = 32_000
BACKLOG = 1_000


async def test_memory_does_not_grow_with_the_backlog(target: Target, tmp_path: Path) -> None:
    result = await slow_consumer(
        target, tmp_path, backlog=BACKLOG, rate=200, slow_jobs=40, warmup=40, body=BODY
    )

    assert result.problems == [], result.explain()
    assert result.lost == 0, "nothing lost across the stop and the restart"
    waiting = result.figures["waiting"] * BODY
    assert waiting > 16 * MIB, "a backlog built up"
    growth = (result.peak_rss or 0) - result.figures["baseline_rss"]
    assert growth < 4 * MIB, (
        f"peak RSS grew by {growth / MIB:.1f} MiB while {waiting / MIB:.0f} MiB waited: the "
        "worker holds the backlog"
    )
