"""Every connection cut (RabbitMQ) or the server restarted (NATS) while jobs are enqueued and
consumed: no confirmed job is lost, and every enqueue under way either returns or raises."""

from __future__ import annotations

from pathlib import Path

from reliability.scenarios.cut import broker_cut
from reliability.targets import Target
from tests.backends import unavailable

JOBS = 3_000
SEND_TIMEOUT = 8.0
"""An enqueue still under way after this long hung: RabbitMQ's reconnect_patience is 3 s here, and
NATS's enqueue retries (up to 20 s) need a fraction of a second after a restart."""


def _cuttable(target: Target) -> None:
    if target.cut is None:
        unavailable("rabbitmqctl cannot reach a virtual host of this session alone to cut")


async def test_no_confirmed_job_is_lost_when_the_broker_cuts(
    target: Target, tmp_path: Path
) -> None:
    _cuttable(target)
    result = await broker_cut(
        target, tmp_path, jobs=JOBS, rate=2_000, cuts=1, send_timeout=SEND_TIMEOUT
    )

    assert result.figures["cuts_while_sending"] == 1, result.notes
    assert result.lost == 0, "every confirmed job handled"
    assert result.processed >= result.sent > 0
    assert result.problems == [], result.explain()  # no enqueue hung or raised a foreign error


async def test_enqueues_under_way_return_or_raise_when_the_cut_finds_the_app_busy(
    target: Target, tmp_path: Path
) -> None:
    """The producer's event loop is busy for 1.5 s as the connection drops (CPU-bound work, a
    starved process): the enqueues caught in it must still end, confirmed or raising."""
    _cuttable(target)
    result = await broker_cut(
        target, tmp_path, jobs=JOBS, rate=1_000, cuts=1, stall=1.5, send_timeout=SEND_TIMEOUT
    )

    assert result.lost == 0
    assert result.problems == [], result.explain()
