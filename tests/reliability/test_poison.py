"""1% of jobs always fail, 5% fail twice: the dead letters hold exactly the first, each with its
error, and every other job succeeds."""

from __future__ import annotations

from pathlib import Path

from reliability.scenarios.poison import poison
from reliability.targets import Target

JOBS = 400


async def test_dead_letters_hold_exactly_the_always_failing_jobs(
    target: Target, tmp_path: Path
) -> None:
    result = await poison(target, tmp_path, jobs=JOBS, always=1, twice=5)

    assert result.problems == [], result.explain()  # each letter's job, error and attempts
    assert result.dead_lettered == JOBS // 100
    assert result.processed == JOBS - JOBS // 100
    assert result.duplicated == 0
