"""Requests under load, one of two servers killed midway: every request ends in time, with a
reply, ``RequestTimeout`` or ``NoResponders``; none hangs."""

from __future__ import annotations

from pathlib import Path

from reliability.scenarios.rpc_load import rpc_under_load
from reliability.targets import Target

REQUESTS = 2_000


async def test_every_request_ends_within_its_deadline(target: Target, tmp_path: Path) -> None:
    result = await rpc_under_load(
        target, tmp_path, requests=REQUESTS, in_flight=200, timeout=2.0, margin=1.0
    )

    assert result.problems == [], result.explain()
    assert result.lost == 0
    assert result.processed > REQUESTS / 2, "the surviving server kept answering"
