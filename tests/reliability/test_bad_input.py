"""Fuzzed bodies and headers from plain clients into a subscriber, an rpc server and a worker:
nothing crashes, bad jobs are dead-lettered, bad requests get an error reply, good messages pass.
"""

from __future__ import annotations

from pathlib import Path

from reliability.scenarios.fuzz import bad_input
from reliability.targets import Target

CASES = 60


async def test_bad_input_is_dead_lettered_or_answered_and_harms_nothing(
    target: Target, tmp_path: Path
) -> None:
    result = await bad_input(target, tmp_path, cases=CASES, timeout=2.0)

    assert result.problems == [], result.explain()  # names the seed that reproduces it
    assert result.lost == 0
    assert result.processed == 3 * CASES, "every good event, job and request handled"
