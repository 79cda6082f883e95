"""A consumer's prefetch is a short in AMQP (``basic.qos``): a ``max_pending`` or
``concurrency`` above 65,535 is "at most N" and consumes with the largest prefetch there is,
instead of failing at start."""

from __future__ import annotations

from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_for
from tests.conftest import MakeApp


async def test_a_limit_above_the_largest_prefetch_starts_and_delivers(
    make_app: MakeApp, uid: str
) -> None:
    app = make_app()
    seen: list[int] = []
    done: list[int] = []

    @app.subscribe(f"{uid}.placed", max_pending=70_000)
    async def audit(event: Job) -> None:
        seen.append(event.n)

    @app.worker(f"{uid}.jobs", concurrency=70_000)
    async def work(job: Job) -> None:
        done.append(job.n)

    async with app:
        await app.publish(f"{uid}.placed", Job(1))
        await app.enqueue(f"{uid}.jobs", Job(2))
        await wait_for(lambda: seen == [1] and done == [2], what="the event and the job handled")
