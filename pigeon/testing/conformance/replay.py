"""Replaying dead letters moves at most the letters present when the replay started, even while a
worker fails the replayed jobs again and dead-letters them anew."""

from __future__ import annotations

import asyncio

import pytest

from pigeon import App, ConfigurationError
from pigeon.testing.conformance.fixtures import MakeApp
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_dead_letters, wait_for

REPLAY_WITHIN = 10.0
"""Seconds a replay of a few letters may take at most (it never returned before the fix)."""


def _always_failing(app: App, queue: str) -> list[int]:
    """Serve ``queue`` on ``app`` with a worker that fails every job; returns the calls it got."""
    calls: list[int] = []

    @app.worker(queue, concurrency=4)
    async def fail(job: Job) -> None:
        calls.append(job.n)
        raise RuntimeError("still broken")

    return calls


async def _three_dead_letters(app: App, queue: str) -> None:
    for n in range(3):
        await app.enqueue(queue, Job(n))
    await wait_dead_letters(app, queue, 3)


async def test_a_replay_moves_only_the_letters_present_when_it_started(
    make_app: MakeApp, uid: str
) -> None:
    app = make_app()
    queue = f"{uid}.again"
    calls = _always_failing(app, queue)
    async with app:
        await _three_dead_letters(app, queue)
        moved = await asyncio.wait_for(app.replay_dead_letters(queue), REPLAY_WITHIN)
        assert moved == 3
        await wait_for(lambda: len(calls) >= 6, what="the replayed jobs to fail again")
        letters = await wait_dead_letters(app, queue, 3)
        assert sorted(letter.body for letter in letters) == [b'{"n":0}', b'{"n":1}', b'{"n":2}']
    assert sorted(calls) == [0, 0, 1, 1, 2, 2], "each job ran once, then once after the replay"


async def test_a_replay_with_a_limit_moves_at_most_that_many(make_app: MakeApp, uid: str) -> None:
    app = make_app()
    queue = f"{uid}.limited"
    calls = _always_failing(app, queue)
    async with app:
        await _three_dead_letters(app, queue)
        moved = await asyncio.wait_for(app.replay_dead_letters(queue, limit=2), REPLAY_WITHIN)
        assert moved == 2
        await wait_for(lambda: len(calls) >= 5, what="the replayed jobs to fail again")
        await wait_dead_letters(app, queue, 3)
    assert len(calls) == 5


async def test_concurrent_replays_move_each_letter_once(make_app: MakeApp, uid: str) -> None:
    app = make_app()
    queue = f"{uid}.twice"
    calls = _always_failing(app, queue)
    async with app:
        await _three_dead_letters(app, queue)
        replays = (app.replay_dead_letters(queue) for _ in range(2))
        moved = await asyncio.wait_for(asyncio.gather(*replays), REPLAY_WITHIN)
        assert sum(moved) == 3, "a letter another replay took is skipped, never an error"
        await wait_for(lambda: len(calls) >= 6, what="the replayed jobs to fail again")
        await wait_dead_letters(app, queue, 3)
        await asyncio.sleep(0.3)  # a job stored twice would run a third time by now
    assert sorted(calls) == [0, 0, 1, 1, 2, 2], "each job ran once, then once after the replays"


async def test_reading_the_dead_letters_of_an_unknown_queue_leaves_it_unknown(
    make_app: MakeApp, uid: str
) -> None:
    """A misspelt queue: replaying, purging or reading its dead letters finds none and declares
    nothing, so the queue stays unknown (``backlog`` still says so) and a service that later
    declares it with other settings starts."""
    queue = f"{uid}.nowhere"
    async with make_app() as app:
        assert await app.replay_dead_letters(queue) == 0
        assert await app.replay_dead_letters(queue, limit=5) == 0
        assert await app.purge_dead_letters(queue) == 0
        assert await app.dead_letters(queue) == []
        with pytest.raises(ConfigurationError, match=f"{queue}.*does not exist"):
            await app.backlog(queue)
    service, handled = make_app(delivery_limit=3), []  # the App above had the default limit

    @service.worker(queue)
    async def work(job: Job) -> None:
        handled.append(job.n)

    async with service:
        await service.enqueue(queue, Job(1))
        await wait_for(lambda: handled == [1], what="the service's worker to take its job")


async def test_reading_some_dead_letters_keeps_their_order(make_app: MakeApp, uid: str) -> None:
    """Look at the oldest letter, then replay one: the one replayed is that oldest, the rest stay
    in order (a read that put letters back behind the others would replay the second)."""
    queue = f"{uid}.ordered"
    failing = make_app()

    @failing.worker(queue, concurrency=1)  # dead-lettered in the order sent
    async def fail(job: Job) -> None:
        raise RuntimeError("broken")

    async with failing:
        await _three_dead_letters(failing, queue)
    async with make_app() as app:
        for read in range(2):
            [oldest] = await app.dead_letters(queue, 1)
            assert oldest.body == b'{"n":0}', f"read {read}: {oldest.body!r}"
        assert await app.replay_dead_letters(queue, 1) == 1
        letters = await app.dead_letters(queue)
        assert [letter.body for letter in letters] == [b'{"n":1}', b'{"n":2}']
