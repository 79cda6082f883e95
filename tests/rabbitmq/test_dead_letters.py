"""Reading ``<queue>.dlq`` leaves it as it was; replaying and purging empty it."""

from __future__ import annotations

import pytest

from pigeon import Reject
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_for
from tests.backends import Backend
from tests.brokers import rabbitmq
from tests.conftest import MakeApp


@pytest.fixture(params=["rabbitmq", "rabbitmq-classic"])
def backend(request: pytest.FixtureRequest) -> Backend:
    return rabbitmq.BACKENDS[request.param]()


async def test_reading_dead_letters_keeps_them_oldest_first(make_app: MakeApp, uid: str) -> None:
    app = make_app()

    @app.worker(f"{uid}.jobs", concurrency=1)
    async def work(job: Job) -> None:
        raise Reject(f"job {job.n}")

    async with app:
        for n in range(5):
            await app.enqueue(f"{uid}.jobs", Job(n))

        async def all_dead() -> bool:
            return len(await app.dead_letters(f"{uid}.jobs")) == 5

        await wait_for(all_dead, what="5 dead letters")
        for _ in range(3):
            letters = await app.dead_letters(f"{uid}.jobs")
            assert [letter.decode(Job).n for letter in letters] == [0, 1, 2, 3, 4]
        assert [m.decode(Job).n for m in await app.dead_letters(f"{uid}.jobs", limit=2)] == [0, 1]
        assert await app.purge_dead_letters(f"{uid}.jobs") == 5
        assert await app.dead_letters(f"{uid}.jobs") == []


async def test_dead_letters_of_a_queue_never_used_are_none(make_app: MakeApp, uid: str) -> None:
    async with make_app() as app:
        assert await app.dead_letters(f"{uid}.unused") == []
        assert await app.purge_dead_letters(f"{uid}.unused") == 0
        assert await app.replay_dead_letters(f"{uid}.unused") == 0
