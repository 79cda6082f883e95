"""An App that only sends jobs or reads dead letters uses a work queue as it exists: only a
worker's App declares a queue's settings, so tools and producers configured otherwise (the CLI
always is) never fail with ``DeclarationConflict``. Workers that disagree still do."""

from __future__ import annotations

import pytest

from pigeon import DeclarationConflict, Reject
from pigeon.testing.conformance.fixtures import Backend, MakeApp, requires
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_dead_letters, wait_for


async def test_a_producer_uses_a_queue_declared_with_other_settings(
    make_app: MakeApp, uid: str, backend: Backend
) -> None:
    queue = f"{uid}.settled"
    worker, producer = make_app(delivery_limit=3), make_app()
    done: list[int] = []

    @worker.worker(queue)
    async def work(job: Job) -> None:
        if job.n == 2:
            raise Reject("not this one")
        done.append(job.n)

    async with worker, producer:
        await producer.enqueue(queue, Job(1))
        await producer.enqueue(queue, Job(2))
        await producer.enqueue(queue, Job(3), delay=0.05)
        await wait_for(lambda: sorted(done) == [1, 3], what="the producer's jobs at the worker")
        await wait_dead_letters(producer, queue, 1)
        assert [letter.body for letter in await producer.dead_letters(queue)] == [b'{"n":2}']
        assert await producer.replay_dead_letters(queue) == 1
        await wait_dead_letters(producer, queue, 1)
        assert await producer.purge_dead_letters(queue) == 1
        assert await producer.dead_letters(queue) == []


async def test_a_reader_of_dead_letters_declares_nothing_it_lacks(
    make_app: MakeApp, uid: str
) -> None:
    reader = make_app()
    async with reader:
        assert await reader.dead_letters(f"{uid}.unknown") == []
        assert await reader.replay_dead_letters(f"{uid}.unknown") == 0
        assert await reader.purge_dead_letters(f"{uid}.unknown") == 0


@pytest.mark.parametrize("limits", [(3, 4), (5, 3)])
async def test_workers_must_agree_on_queue_settings(
    make_app: MakeApp, uid: str, backend: Backend, limits: tuple[int, int]
) -> None:
    requires(backend, "delivery_limit")
    first, second = (make_app(delivery_limit=limit) for limit in limits)
    queue = f"{uid}.settings"

    @first.worker(queue)
    async def one(job: Job) -> None: ...

    @second.worker(queue)
    async def two(job: Job) -> None: ...

    async with first:
        with pytest.raises(DeclarationConflict, match="delivery_limit"):
            await second.start()
