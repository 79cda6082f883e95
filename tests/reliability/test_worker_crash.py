"""Worker processes SIGKILLed mid-run: every job is handled at least once."""

from __future__ import annotations

from pathlib import Path

from reliability.scenarios.crash import worker_crash
from reliability.targets import Target

JOBS = 600


async def test_no_job_is_lost_when_workers_are_killed(target: Target, tmp_path: Path) -> None:
    result = await worker_crash(target, tmp_path, jobs=JOBS, workers=3, kills=2)

    assert result.problems == [], result.explain()
    assert result.sent == JOBS
    assert result.processed == JOBS, "every job handled at least once"
    assert result.lost == 0
    assert result.dead_lettered == 0
