"""Work pools on JetStream: what NATS adds to the conformance suite's semantics."""

from __future__ import annotations

import asyncio

import nats

from pigeon import App, Message, Redeliver
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_for


async def test_a_worker_takes_no_more_jobs_than_it_has_free_slots(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    both_started = asyncio.Event()
    started: list[int] = []
    workers = [App(nats_url), App(nats_url)]
    for app in workers:

        @app.worker(f"{uid}.jobs", concurrency=1)
        async def work(job: Job) -> None:
            started.append(job.n)
            if len(started) == 2:
                both_started.set()
            await both_started.wait()  # finishes only once the other worker took the other job

    async with workers[0], workers[1]:
        for n in (1, 2):
            await workers[0].enqueue(f"{uid}.jobs", Job(n))
        await asyncio.wait_for(both_started.wait(), 10)
    assert sorted(started) == [1, 2]


async def test_a_handler_longer_than_ack_wait_is_kept_alive_not_redelivered(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    app = App(nats_url, ack_wait=1.0)
    calls: list[int] = []

    @app.worker(f"{uid}.slow")
    async def work(job: Job, msg: Message) -> None:
        calls.append(msg.attempt)
        await asyncio.sleep(2.5)  # the work: longer than ack_wait

    async with app:
        await app.enqueue(f"{uid}.slow", Job(1))
        await wait_for(lambda: calls == [1])
        info = await raw.jetstream().consumer_info(f"PIGEON_Q_{uid}_slow", "workers")
        await wait_for(lambda: _acked(raw, f"PIGEON_Q_{uid}_slow"), timeout=10)
    assert calls == [1], "in-progress acks kept JetStream from delivering it again"
    assert info.config.ack_wait == 1.0


async def _acked(raw: nats.NATS, stream: str) -> bool:
    info = await raw.jetstream().consumer_info(stream, "workers")
    return info.num_ack_pending == 0 and info.num_pending == 0


async def test_redeliveries_count_towards_the_delivery_limit(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    app = App(nats_url, delivery_limit=3)
    attempts: list[int] = []

    @app.worker(f"{uid}.flaky", redeliver=Redeliver(delays=(0.01,) * 5))
    async def work(job: Job, msg: Message) -> None:
        attempts.append(msg.attempt)
        raise ConnectionError("down")

    async with app:
        await app.enqueue(f"{uid}.flaky", Job(1))
        await wait_for(lambda: _dead_letters(app, f"{uid}.flaky", 1))
        letters = await app.dead_letters(f"{uid}.flaky")
    assert attempts == [1, 2, 3], "JetStream counts every delivery, naks included"
    assert letters[0].failure is not None
    assert letters[0].failure.type == "DeliveryLimitExceeded"


async def _dead_letters(app: App, queue: str, count: int) -> bool:
    return len(await app.dead_letters(queue)) >= count


async def test_dead_letters_and_replays_keep_the_message_id(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    app = App(nats_url)
    fixed = False
    ids: list[str] = []

    @app.worker(f"{uid}.ids")
    async def work(job: Job, msg: Message) -> None:
        ids.append(msg.message_id)
        if not fixed:
            raise RuntimeError("bug")

    async with app:
        await app.enqueue(f"{uid}.ids", Job(1))
        await wait_for(lambda: _dead_letters(app, f"{uid}.ids", 1))
        [letter] = await app.dead_letters(f"{uid}.ids")
        fixed = True
        assert await app.replay_dead_letters(f"{uid}.ids") == 1
        await wait_for(lambda: len(ids) == 2)
        await app.enqueue(f"{uid}.ids", Job(2))
        await wait_for(lambda: len(ids) == 3)
        assert await app.purge_dead_letters(f"{uid}.ids") == 0
    assert ids[0] == ids[1] == letter.message_id
    assert ids[2] != ids[0]


async def test_purge_dead_letters_counts_what_it_deleted(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    app = App(nats_url)

    @app.worker(f"{uid}.purge", dead_letter=True)
    async def work(job: Job) -> None:
        raise RuntimeError("always")

    async with app:
        assert await app.purge_dead_letters(f"{uid}.purge") == 0
        for n in range(3):
            await app.enqueue(f"{uid}.purge", Job(n))
        await wait_for(lambda: _dead_letters(app, f"{uid}.purge", 3))
        assert len(await app.dead_letters(f"{uid}.purge", limit=2)) == 2
        assert await app.purge_dead_letters(f"{uid}.purge") == 3
        assert await app.dead_letters(f"{uid}.purge") == []
        assert await app.dead_letters(f"{uid}.never.used") == []
        assert await app.purge_dead_letters(f"{uid}.never.used") == 0
