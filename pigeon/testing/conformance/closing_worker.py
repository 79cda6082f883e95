"""A closing worker keeps the jobs its handlers still run: another, free worker of the queue does
not start one while it runs, however long closing takes, even past the time after which the
broker gives a silent worker's job to another (Redis's ``claim_idle``, JetStream's ``ack_wait``,
made short here). A job whose handler was cancelled at ``shutdown_timeout`` goes to the other
worker only once the cancel is done.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from pigeon.app import App
from pigeon.testing.conformance.fixtures import Backend, MakeApp
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_for

SHORT_HOLD: dict[str, dict[str, object]] = {
    "redis": {"claim_idle": 1.0},
    "nats": {"ack_wait": 1.0},
}
"""App options that make a transport give a silent worker's job to another soon, if it does."""

RUNS_ON = 2.5
"""Seconds a closing worker's handler runs on: longer than each ``SHORT_HOLD``, plus the time a
free worker takes to look for such jobs (Redis: at most 1 s)."""


def _options(backend: Backend, **more: object) -> dict[str, object]:
    return {**SHORT_HOLD.get(backend.name.split("-")[0], {}), **more}


async def test_a_job_finishing_within_shutdown_timeout_runs_once(
    make_app: MakeApp, backend: Backend, uid: str
) -> None:
    events: list[str] = []
    first = make_app(**_options(backend, shutdown_timeout=30))

    @first.worker(f"{uid}.jobs")
    async def slow(job: Job) -> None:
        events.append("first started")
        await asyncio.sleep(RUNS_ON)  # the job's own work, outlasting the short hold
        events.append("first finished")

    second = await _started_beside(make_app, backend, first, uid, events)
    await first.close()
    await second.close()
    assert events == ["first started", "first finished"], "the job ran twice"


async def test_a_job_cut_off_by_shutdown_timeout_goes_on_only_after_its_cancel(
    make_app: MakeApp, backend: Backend, uid: str
) -> None:
    events: list[str] = []
    first = make_app(**_options(backend, shutdown_timeout=RUNS_ON))

    @first.worker(f"{uid}.jobs")
    async def hang(job: Job) -> None:
        events.append("first started")
        try:
            await asyncio.Event().wait()
        finally:
            events.append("first cancelled")

    second = await _started_beside(make_app, backend, first, uid, events)
    await first.close()
    await wait_for(lambda: "second started" in events, what="the cut-off job at the other worker")
    await second.close()
    assert events == ["first started", "first cancelled", "second started"]


async def test_a_sync_job_running_past_shutdown_timeout_runs_once(
    make_app: MakeApp, backend: Backend, uid: str
) -> None:
    events: list[str] = []
    release = threading.Event()
    first = make_app(**_options(backend, shutdown_timeout=0.1))

    @first.worker(f"{uid}.jobs")
    def blocking(job: Job) -> None:  # a thread: it runs on after the shutdown timeout
        events.append("first started")
        release.wait(30)
        events.append("first finished")

    second = await _started_beside(make_app, backend, first, uid, events)
    closing = asyncio.create_task(first.close())
    try:
        await asyncio.wait({closing}, timeout=RUNS_ON)
        assert events == ["first started"], "the job was handed on while its thread still ran"
    finally:
        release.set()
    await closing
    await second.close()
    assert events == ["first started", "first finished"], "the job ran twice"


async def _started_beside(
    make_app: MakeApp, backend: Backend, first: App, uid: str, events: list[str]
) -> App:
    """Start ``first``, enqueue one job, wait until ``first`` started it, and start a free
    worker of the queue beside it that notes ``second started``; the free worker."""
    second = make_app(**_options(backend))

    @second.worker(f"{uid}.jobs")
    async def work(job: Job) -> None:
        events.append("second started")

    await first.start()
    await first.enqueue(f"{uid}.jobs", Job(1))
    await wait_for(lambda: events == ["first started"], what="the job at the first worker")
    await second.start()
    return second


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_a_handler_cut_off_at_close_is_logged(
    make_app: MakeApp, uid: str, concurrency: int, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(shutdown_timeout=0.2)
    started = asyncio.Event()

    @app.worker(f"{uid}.jobs", concurrency=concurrency)
    async def hang(job: Job) -> None:
        started.set()
        await asyncio.Event().wait()

    with caplog.at_level(logging.WARNING, logger="pigeon"):
        async with app:
            await app.enqueue(f"{uid}.jobs", Job(1))
            await started.wait()
    cut_off = [r.getMessage() for r in caplog.records if "shutdown timeout" in r.getMessage()]
    assert len(cut_off) == 1, [r.getMessage() for r in caplog.records]
    assert cut_off[0].startswith("pigeon: worker "), cut_off  # the handler, its queue, the count
    assert f"hang of queue '{uid}.jobs': 1 call(s) still running" in cut_off[0], cut_off
