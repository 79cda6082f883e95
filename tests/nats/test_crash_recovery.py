"""A worker SIGKILLed mid-job: JetStream delivers its job again within seconds (the short default
ack wait is safe because pigeon keeps handlers in progress alive)."""

from __future__ import annotations

import nats

from tests.crash import killed_job_comes_back

RECOVERY = 8.0
"""Seconds from the kill to the job's next delivery, at most (ack wait 5 s, plus a pull)."""


async def test_a_killed_workers_job_comes_back_within_seconds(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    attempt, after = await killed_job_comes_back(nats_url, f"{uid}.crash", RECOVERY)
    assert attempt == 2
    assert after < RECOVERY, f"came back {after:.1f}s after the kill"
