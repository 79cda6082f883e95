"""``App(passive=True)``: declare nothing, use what exists, name what is missing."""

from __future__ import annotations

import pytest

from pigeon import ConfigurationError
from pigeon.testing.conformance.fixtures import Backend, MakeApp, requires
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_dead_letters, wait_for


async def test_passive_app_names_the_queue_that_is_missing(
    backend: Backend, make_app: MakeApp, uid: str
) -> None:
    requires(backend, "passive")
    app = make_app(passive=True)

    @app.worker(f"{uid}.jobs")
    async def work(job: Job) -> None: ...

    with pytest.raises(ConfigurationError, match=f"{uid}.jobs"):
        await app.start()
    async with make_app(passive=True) as sender:
        with pytest.raises(ConfigurationError, match=f"{uid}.jobs"):
            await sender.enqueue(f"{uid}.jobs", Job(1))


async def test_passive_app_works_a_queue_that_exists(
    backend: Backend, make_app: MakeApp, uid: str
) -> None:
    requires(backend, "passive")
    async with make_app() as owner:  # declares the queue and its dead letters, as an owner would
        await owner.enqueue(f"{uid}.jobs", Job(1))
    app = make_app(passive=True)
    done: list[int] = []

    @app.worker(f"{uid}.jobs")
    async def work(job: Job) -> None:
        if job.n == 2:
            raise ValueError("two is bad")
        done.append(job.n)

    async with app:
        await app.enqueue(f"{uid}.jobs", Job(2))
        await app.enqueue(f"{uid}.jobs", Job(3))
        await wait_for(lambda: sorted(done) == [1, 3])
        [letter] = await wait_dead_letters(app, f"{uid}.jobs", 1)
    assert letter.decode(Job) == Job(2)
