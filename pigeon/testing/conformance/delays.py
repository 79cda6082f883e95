"""Delayed and scheduled jobs (``enqueue(delay=...)``, ``enqueue(at=...)``) every transport must
give: stored at once, handed to a worker no earlier than due, in the order of their due times,
whoever is running when they fall due.

A job is never early: each test asserts a lower bound only (``EARLY``, for the clocks' resolution);
how late a job may come depends on the broker (see each transport's page) and is not asserted.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from pigeon import App, ConfigurationError, Message, Redeliver
from pigeon.testing.conformance.fixtures import MakeApp, now
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_for

EARLY = 0.05
"""Seconds a job may seem early by: the resolution of the clocks compared (the broker's, ours)."""

VIRTUAL_CLOCK = True
"""Safe on the virtual clock: nothing here compares the loop's clock with wall-clock time."""


def _recording(app: App, queue: str, handled: list[tuple[int, float]]) -> None:
    """Register a worker of ``queue`` on ``app`` that records each job's number and time."""

    @app.worker(queue)
    async def work(job: Job) -> None:
        handled.append((job.n, now()))


async def test_a_delayed_job_waits_until_due(make_app: MakeApp, uid: str) -> None:
    app = make_app()
    handled: list[tuple[int, float]] = []
    _recording(app, f"{uid}.later", handled)
    async with app:
        started = now()
        await app.enqueue(f"{uid}.later", Job(1), delay=0.8)
        await app.enqueue(f"{uid}.later", Job(2))
        await wait_for(lambda: len(handled) == 2, what="both jobs")
    assert [n for n, _ in handled] == [2, 1], "the job without delay first"
    assert handled[1][1] - started >= 0.8 - EARLY, "never before its delay"


async def test_at_schedules_by_wall_clock_and_a_past_time_runs_now(
    make_app: MakeApp, uid: str
) -> None:
    app = make_app()
    handled: list[tuple[int, float]] = []
    _recording(app, f"{uid}.at", handled)
    async with app:
        started = now()
        await app.enqueue(f"{uid}.at", Job(1), at=datetime.now(UTC) + timedelta(seconds=0.7))
        await app.enqueue(f"{uid}.at", Job(2), at=datetime.now(UTC) - timedelta(hours=1))
        await app.enqueue(f"{uid}.at", Job(3), delay=0)
        await wait_for(lambda: len(handled) == 3, what="three jobs")
    assert [n for n, _ in handled][-1] == 1
    assert handled[-1][1] - started >= 0.7 - EARLY


async def test_bad_delays_are_refused_before_anything_is_stored(
    make_app: MakeApp, uid: str
) -> None:
    app = make_app()
    handled: list[tuple[int, float]] = []
    _recording(app, f"{uid}.bad", handled)
    async with app:
        with pytest.raises(ConfigurationError, match="aware datetime"):
            await app.enqueue(f"{uid}.bad", Job(1), at=datetime.now() + timedelta(seconds=1))
        with pytest.raises(ConfigurationError, match="cannot be negative"):
            await app.enqueue(f"{uid}.bad", Job(2), delay=-1)
        with pytest.raises(ConfigurationError, match="not both"):
            await app.enqueue(f"{uid}.bad", Job(3), delay=1, at=datetime.now(UTC))
        await app.enqueue(f"{uid}.bad", Job(4))
        await wait_for(lambda: len(handled) == 1, what="the good job")
    assert [n for n, _ in handled] == [4]


async def test_jobs_fall_due_in_the_order_of_their_due_times(make_app: MakeApp, uid: str) -> None:
    app = make_app()
    handled: list[tuple[int, float]] = []
    _recording(app, f"{uid}.order", handled)
    delays = {1: 1.6, 2: 0.4, 3: 1.2, 4: 0.8, 5: 0.0}  # 0.4 s apart: the tolerance of the order
    async with app:
        started = now()
        for n, delay in delays.items():
            await app.enqueue(f"{uid}.order", Job(n), delay=delay)
        await wait_for(lambda: len(handled) == len(delays), what="every job")
    assert [n for n, _ in handled] == sorted(delays, key=delays.__getitem__)
    for n, at in handled:
        assert at - started >= delays[n] - EARLY, f"job {n} came early"


async def test_many_distinct_delays_are_all_kept(make_app: MakeApp, uid: str) -> None:
    app = make_app()
    handled: list[tuple[int, float]] = []
    _recording(app, f"{uid}.many", handled)
    count = 200
    async with app:
        started = now()
        await asyncio.gather(
            *(app.enqueue(f"{uid}.many", Job(n), delay=0.2 + n / 200) for n in range(count))
        )
        await wait_for(lambda: len(handled) == count, timeout=20, what=f"{count} jobs")
        assert await app.dead_letters(f"{uid}.many") == []
    assert sorted(n for n, _ in handled) == list(range(count))
    for n, at in handled:
        assert at - started >= 0.2 + n / 200 - EARLY, f"job {n} came early"


async def test_a_delayed_job_outlives_its_sender_and_a_worker(make_app: MakeApp, uid: str) -> None:
    sender = make_app()
    async with sender:
        started = now()
        await sender.enqueue(f"{uid}.kept", Job(7), delay=1.2)
    first: list[tuple[int, float]] = []
    quitter = make_app()
    _recording(quitter, f"{uid}.kept", first)
    async with quitter:  # a worker that sees the job waiting, then stops before it is due
        await asyncio.sleep(0.3)  # the worker's turn to take what is there: nothing is due yet
    later: list[tuple[int, float]] = []
    worker = make_app()
    _recording(worker, f"{uid}.kept", later)
    async with worker:
        await wait_for(lambda: len(later) == 1, what="the delayed job")
    assert first == []
    assert later[0][0] == 7
    assert later[0][1] - started >= 1.2 - EARLY


async def test_redelivery_waits_its_delay_and_counts_attempts(make_app: MakeApp, uid: str) -> None:
    app = make_app()
    seen: list[tuple[int, float]] = []

    @app.worker(f"{uid}.again", redeliver=Redeliver(delays=(0.5, 0.3)))
    async def work(job: Job, msg: Message) -> None:
        seen.append((msg.attempt, now()))
        if msg.attempt < 3:
            raise RuntimeError("not yet")

    async with app:
        await app.enqueue(f"{uid}.again", Job(1), delay=0.3)
        await wait_for(lambda: len(seen) == 3, what="three deliveries")
        assert await app.dead_letters(f"{uid}.again") == []
    assert [attempt for attempt, _ in seen] == [1, 2, 3], "a delayed job starts at attempt 1"
    assert seen[1][1] - seen[0][1] >= 0.5 - EARLY
    assert seen[2][1] - seen[1][1] >= 0.3 - EARLY
