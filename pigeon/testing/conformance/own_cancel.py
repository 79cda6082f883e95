"""A handler that cancels its own task and returns at once (no wait after it, so the
cancellation is still pending when it returns) ends itself only: every other call of the same
subscriber (plain or durable), worker or rpc server runs to its end, and its own message is
settled (its reply sent, its ack made), whatever the concurrency. Handlers run one
after the other in one task (a one-task pump, or a burst of calls that never wait), where the
pending cancellation used to cancel the next call at its first wait."""

from __future__ import annotations

import asyncio

import pytest

from pigeon.retry import Retry
from pigeon.testing.conformance.fixtures import MakeApp, cancel_own_task
from pigeon.testing.waiting import wait_for

COUNT = 12


@pytest.mark.parametrize("pattern", ["subscribe", "durable", "worker", "rpc"])
@pytest.mark.parametrize("concurrency", [1, 4])
async def test_a_handler_that_cancels_its_own_task_and_returns_cancels_no_other_call(
    make_app: MakeApp, uid: str, pattern: str, concurrency: int
) -> None:
    app = make_app()
    finished: set[int] = set()
    subject = f"{uid}.own-cancel"

    async def handle(n: int) -> int:
        if n % 4 == 0:  # 0, 4, 8: cancel, and return before the cancellation is delivered
            cancel_own_task()
            finished.add(n)
            return n
        await asyncio.sleep(0.001)  # where a pending cancellation would land
        finished.add(n)
        return n

    if pattern == "subscribe":
        app.subscribe(subject, concurrency=concurrency)(handle)
    elif pattern == "durable":
        app.subscribe(subject, durable=f"{uid}-own-cancel", concurrency=concurrency)(handle)
    elif pattern == "worker":
        app.worker(subject, concurrency=concurrency)(handle)
    else:
        app.rpc(subject, concurrency=concurrency)(handle)

    async with app:
        if pattern == "rpc":
            replies = await asyncio.gather(
                *(app.request(subject, n, reply=int, timeout=10) for n in range(COUNT))
            )
            assert replies == list(range(COUNT))  # a cancelling call's too: it returned
        else:
            for n in range(COUNT):
                if pattern in ("subscribe", "durable"):
                    await app.publish(subject, n)
                else:
                    await app.enqueue(subject, n)
        await wait_for(
            lambda: len(finished) == COUNT, timeout=10, what="every call to run to its end"
        )
    assert finished == set(range(COUNT))


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_a_worker_whose_handler_cancels_its_own_task_and_raises_is_retried(
    make_app: MakeApp, uid: str, concurrency: int
) -> None:
    """Its cancellation is withdrawn before the retry's wait (pigeon's step, which it used to
    cancel: the job was taken for the App stopping, never retried, and on RabbitMQ at
    concurrency 1 left unacknowledged, the worker taking no other)."""
    app = make_app()
    calls: list[int] = []
    queue = f"{uid}.own-cancel-retry"

    @app.worker(queue, concurrency=concurrency, retry=Retry(attempts=2, backoff=0.01))
    async def job(n: int) -> None:
        calls.append(n)
        if calls == [1]:
            cancel_own_task()
            raise ValueError("the first call fails")

    async with app:
        await app.enqueue(queue, 1)
        await app.enqueue(queue, 2)
        await wait_for(
            lambda: sorted(calls) == [1, 1, 2], timeout=10, what="job 1 retried and job 2 handled"
        )
