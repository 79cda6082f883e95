"""A work queue's settings on JetStream: workers that disagree conflict and a producer changes
nothing, on every server pigeon supports (2.9 updates a consumer on create; 2.10 and later have
the create action)."""

from __future__ import annotations

import asyncio

import nats
import pytest

from pigeon import App, DeclarationConflict
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_for
from pigeon.transports.nats.topology import QueueNames


async def test_workers_must_agree_on_ack_wait(nats_url: str, uid: str, raw: nats.NATS) -> None:
    first, second = App(nats_url, ack_wait=12), App(nats_url, ack_wait=3)
    for app in (first, second):

        @app.worker(f"{uid}.jobs")
        async def work(job: Job) -> None: ...

    async with first:
        with pytest.raises(DeclarationConflict, match="ack_wait"):
            await second.start()


async def test_a_producer_leaves_the_workers_settings(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    worker = App(nats_url, delivery_limit=3, ack_wait=12)

    @worker.worker(f"{uid}.jobs")
    async def work(job: Job) -> None: ...

    async with worker, App(nats_url, delivery_limit=5, ack_wait=3) as producer:
        await producer.enqueue(f"{uid}.jobs", Job(1))
        stream = f"PIGEON_Q_{uid}_jobs"
        info = await raw.jetstream().consumer_info(stream, "workers")
    assert (info.config.max_deliver, info.config.ack_wait) == (4, 12)


async def test_the_first_worker_sets_the_settings_of_a_queue_a_producer_made(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    """A producer that enqueues before any worker ran makes the consumers with its own
    defaults; the first worker's settings replace them, and later workers must agree."""
    async with App(nats_url, delivery_limit=5, ack_wait=3) as producer:
        await producer.enqueue(f"{uid}.jobs", Job(1))
    worker, handled = App(nats_url, delivery_limit=3, ack_wait=12), list[int]()

    @worker.worker(f"{uid}.jobs")
    async def work(job: Job) -> None:
        handled.append(job.n)

    names = QueueNames.of(f"{uid}.jobs")
    async with worker:
        await wait_for(lambda: handled == [1], what="the job")
        workers = await raw.jetstream().consumer_info(names.stream, "workers")
        movers = await raw.jetstream().consumer_info(names.delay_stream, "movers")
        disagreeing = App(nats_url, delivery_limit=3, ack_wait=3)

        @disagreeing.worker(f"{uid}.jobs")
        async def other(job: Job) -> None: ...

        with pytest.raises(DeclarationConflict, match="ack_wait"):
            await disagreeing.start()
        await disagreeing.close()
    assert (workers.config.max_deliver, workers.config.ack_wait) == (4, 12)
    assert not workers.config.description  # no longer the producer's
    assert movers.config.ack_wait == 12


@pytest.mark.parametrize("round_", range(4))  # the race goes either way: a few rounds
async def test_two_first_workers_that_disagree_never_run_on_each_others_settings(
    nats_url: str, uid: str, raw: nats.NATS, round_: int
) -> None:
    """Two first workers with different settings starting at once after a producer: each
    either runs on its own settings (``workers`` and ``movers`` alike) or gets
    ``DeclarationConflict``, never the other's settings."""
    queue = f"{uid}.r{round_}.jobs"
    async with App(nats_url, delivery_limit=5, ack_wait=3) as producer:
        await producer.enqueue(queue, Job(1))
    settings = {"a": (4, 3.0), "b": (6, 9.0)}  # delivery_limit, ack_wait
    apps = {k: App(nats_url, delivery_limit=d, ack_wait=w) for k, (d, w) in settings.items()}
    for app in apps.values():

        @app.worker(queue)
        async def work(job: Job) -> None: ...

    outcomes = await asyncio.gather(*(a.start() for a in apps.values()), return_exceptions=True)
    names = QueueNames.of(queue)
    workers = await raw.jetstream().consumer_info(names.stream, "workers")
    movers = await raw.jetstream().consumer_info(names.delay_stream, "movers")
    for app in apps.values():
        await app.close()
    for (limit, wait), outcome in zip(settings.values(), outcomes, strict=True):
        if outcome is None:  # it runs: on its own settings only
            assert (workers.config.max_deliver, workers.config.ack_wait) == (limit + 1, wait)
            assert movers.config.ack_wait == wait
        else:
            assert isinstance(outcome, DeclarationConflict), repr(outcome)
