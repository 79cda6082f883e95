"""``attempt`` and ``Failure.attempts`` count handler calls on every transport: a closing worker
stops taking jobs before it stops handling, so no delivery reaches it only to be handed back."""

from __future__ import annotations

import asyncio

from pigeon import App, Message, Redeliver
from pigeon.testing.conformance.fixtures import MakeApp
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_dead_letters, wait_for


async def test_attempts_do_not_skip_when_a_worker_closes_during_a_redelivery(
    make_app: MakeApp, uid: str
) -> None:
    queue = f"{uid}.restart"
    redeliver = Redeliver(delays=(0.3, 0.3))
    attempts: list[int] = []
    closing = make_app(shutdown_timeout=1.2)
    hanging = asyncio.Event()

    @closing.worker(queue, concurrency=2, redeliver=redeliver)
    async def first(job: Job, msg: Message) -> None:
        if job.n == 2:  # keeps the closing worker draining while job 1's redelivery falls due
            hanging.set()
            await asyncio.Event().wait()
        attempts.append(msg.attempt)
        raise RuntimeError("fails")

    await closing.start()
    await closing.enqueue(queue, Job(1))
    await wait_for(lambda: attempts == [1], what="the first call")
    await closing.enqueue(queue, Job(2))
    await asyncio.wait_for(hanging.wait(), 10)
    await closing.close()  # job 1 falls due while this waits for job 2's handler
    survivor = make_app()

    @survivor.worker(queue, concurrency=2, redeliver=redeliver)
    async def second(job: Job, msg: Message) -> None:
        if job.n == 1:
            attempts.append(msg.attempt)
            raise RuntimeError("fails")

    async with survivor:
        letters = await wait_dead_letters(survivor, queue, 1)
    assert attempts == [1, 2, 3], "each attempt is a handler call"
    assert letters[0].failure is not None
    assert letters[0].failure.attempts == 3


async def test_attempts_survive_a_worker_closed_during_a_redelivery_delay(
    make_app: MakeApp, uid: str
) -> None:
    queue = f"{uid}.idle"
    attempts: list[int] = []

    def serve(app: App) -> None:
        @app.worker(queue, redeliver=Redeliver(delays=(0.2, 0.2)))
        async def work(job: Job, msg: Message) -> None:
            attempts.append(msg.attempt)
            raise RuntimeError("fails")

    closing = make_app()
    serve(closing)
    await closing.start()
    await closing.enqueue(queue, Job(1))
    await wait_for(lambda: attempts == [1], what="the first call")
    await closing.close()
    await asyncio.sleep(0.4)  # the scenario: the redelivery falls due while no worker runs
    survivor = make_app()
    serve(survivor)
    async with survivor:
        letters = await wait_dead_letters(survivor, queue, 1)
    assert attempts == [1, 2, 3], "each attempt is a handler call"
    assert letters[0].failure is not None
    assert letters[0].failure.attempts == 3
