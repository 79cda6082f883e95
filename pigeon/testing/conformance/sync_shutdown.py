"""A sync handler (a ``def``, run in a thread) cannot be interrupted: when ``shutdown_timeout``
ends while it runs, closing waits for its thread, and its job is never handed back to another
worker while the thread still runs. A job the late handler finished is acked (done once); one it
failed goes back to the broker after the thread ended.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from pigeon.testing.conformance.fixtures import MakeApp
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_for

PAST_TIMEOUT = 0.5
"""Seconds the test watches for a handed-back job after ``shutdown_timeout`` (0.1 s) ended: a
handed-back job reaches the other worker within milliseconds on every transport."""


async def test_a_running_sync_job_is_never_handed_back_at_shutdown(
    make_app: MakeApp, uid: str
) -> None:
    release = threading.Event()
    started: list[str] = []
    finished: list[str] = []

    def handler_of(worker: str) -> Callable[[Job], None]:
        def work(job: Job) -> None:  # a sync handler: it runs in a thread
            started.append(worker)
            release.wait(30)
            finished.append(worker)

        return work

    first, second = make_app(shutdown_timeout=0.1), make_app(shutdown_timeout=0.1)
    first.worker(f"{uid}.jobs")(handler_of("first"))
    second.worker(f"{uid}.jobs")(handler_of("second"))
    async with first:
        await first.enqueue(f"{uid}.jobs", Job(1))
        await wait_for(lambda: started == ["first"], what="the first worker's thread")
        await second.start()
        closing = asyncio.create_task(first.close())
        try:
            done, _ = await asyncio.wait({closing}, timeout=PAST_TIMEOUT)
            assert started == ["first"], "the job was handed back while its thread still ran"
            assert not done, "close returned while the sync handler still ran"
        finally:
            release.set()
        await closing
    await wait_for(lambda: finished == ["first"], what="the first thread to finish")
    await second.close()
    assert started == ["first"], "the job finished by the late handler ran again"


async def test_a_sync_job_that_fails_after_shutdown_goes_back_once_its_thread_ended(
    make_app: MakeApp, uid: str
) -> None:
    release = threading.Event()
    events: list[str] = []

    def failing(job: Job) -> None:  # the first worker's: fails once released
        events.append("first started")
        release.wait(30)
        events.append("first ended")
        raise RuntimeError("failed after the shutdown timeout")

    def succeeding(job: Job) -> None:
        events.append("second started")

    first, second = make_app(shutdown_timeout=0.1), make_app(shutdown_timeout=0.1)
    first.worker(f"{uid}.jobs")(failing)
    second.worker(f"{uid}.jobs")(succeeding)
    async with first:
        await first.enqueue(f"{uid}.jobs", Job(1))
        await wait_for(lambda: events == ["first started"], what="the first worker's thread")
        await second.start()
        closing = asyncio.create_task(first.close())
        try:
            await asyncio.wait({closing}, timeout=PAST_TIMEOUT)
            assert events == ["first started"], "handed back while its thread still ran"
        finally:
            release.set()
        await closing
    await wait_for(lambda: "second started" in events, what="the job at the second worker")
    assert events == ["first started", "first ended", "second started"]
