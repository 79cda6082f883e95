"""A work queue's ``claim_idle`` is recorded with the queue, so that every worker of it claims a
silent worker's jobs after the same time: a worker that does not set it adopts the queue's, one
that sets another gets ``DeclarationConflict``, and a queue an older pigeon declared (nothing
recorded) keeps the 30 s its older workers renew their claims for. Only workers record it: a
producer that creates a queue records ``unset``, and its first worker records its own."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from pigeon import App, DeclarationConflict, Message
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_for
from pigeon.transports.redis.topology import WORKERS, Keys

ELSEWHERE = "elsewhere"
"""The consumer name of a worker in another process, which the tests play with a raw client."""


def _worker(app: App, queue: str, seen: list[int] | None = None) -> None:
    @app.worker(queue, concurrency=4)
    async def work(job: Job, msg: Message) -> None:
        if seen is not None:
            seen.append(job.n)


async def _held_elsewhere(raw: Redis, stream: str, idle_ms: dict[int, int]) -> list[bytes]:
    """Take every ready job of ``stream`` as the consumer ``ELSEWHERE`` and make the n-th one
    (counting from 1) look idle for ``idle_ms[n]`` ms, as jobs of a worker that has not renewed
    its claims for that long; their entry ids."""
    read = await raw.xreadgroup(WORKERS, ELSEWHERE, {stream: ">"}, count=len(idle_ms))
    ids = [entry_id for entry_id, _ in read[0][1]]
    for n, entry_id in enumerate(ids, 1):
        await raw.xclaim(stream, WORKERS, ELSEWHERE, 0, [entry_id], idle=idle_ms[n], justid=True)
    return ids


async def _owner(raw: Redis, stream: str, entry_id: bytes) -> str:
    pending = await raw.xpending_range(stream, WORKERS, entry_id, entry_id, 1)
    return str(pending[0]["consumer"], "utf-8")


async def test_workers_must_agree_on_claim_idle(redis_url: str, uid: str) -> None:
    queue = f"{uid}.jobs"
    first, second, third = (App(redis_url, claim_idle=s) for s in (12, 3, 12))
    for app in (first, second, third):
        _worker(app, queue)
    async with first:
        with pytest.raises(DeclarationConflict, match=r"claim_idle=12s.*claim_idle=3s"):
            await second.start()
        async with App(redis_url, claim_idle=3) as producer:  # a producer uses the queue as is
            await producer.enqueue(queue, Job(1))
        async with third:  # and changed nothing
            pass


async def test_a_worker_that_does_not_set_claim_idle_adopts_the_queues(
    redis_url: str, prefix: str, raw: Redis, uid: str
) -> None:
    queue, stream = f"{uid}.jobs", Keys(prefix).queue(f"{uid}.jobs")
    declaring = App(redis_url, claim_idle=20)
    _worker(declaring, queue)
    async with declaring:  # records 20 s, and stops
        pass
    async with App(redis_url) as producer:
        for n in (1, 2):
            await producer.enqueue(queue, Job(n))
    ids = await _held_elsewhere(raw, stream, {1: 10_000, 2: 21_000})
    adopting, seen = App(redis_url), []
    _worker(adopting, queue, seen)
    async with adopting:
        await wait_for(lambda: 2 in seen, timeout=5, what="the job idle for over 20 s")
    assert seen == [2], "a job idle for less than the queue's claim_idle was claimed"
    assert await _owner(raw, stream, ids[0]) == ELSEWHERE


async def test_a_queue_declared_by_an_older_pigeon_keeps_30s(
    redis_url: str, prefix: str, raw: Redis, uid: str
) -> None:
    queue, keys = f"{uid}.jobs", Keys(prefix)
    stream = keys.queue(queue)
    await raw.hset(keys.settings(queue), "delivery_limit", "10")  # what an older pigeon records
    await raw.xgroup_create(stream, WORKERS, id="0", mkstream=True)
    async with App(redis_url) as producer:
        for n in (1, 2):
            await producer.enqueue(queue, Job(n))
    ids = await _held_elsewhere(raw, stream, {1: 8_000, 2: 31_000})
    worker, seen = App(redis_url), []
    _worker(worker, queue, seen)
    async with worker:
        await wait_for(lambda: 2 in seen, timeout=5, what="the job idle for over 30 s")
    assert seen == [2], "a job an older worker renews every 10 s was claimed after 8 s"
    assert await _owner(raw, stream, ids[0]) == ELSEWHERE


async def test_a_worker_that_sets_claim_idle_on_an_older_queue_records_it(
    redis_url: str, prefix: str, raw: Redis, uid: str
) -> None:
    queue, keys = f"{uid}.jobs", Keys(prefix)
    await raw.hset(keys.settings(queue), "delivery_limit", "10")
    await raw.xgroup_create(keys.queue(queue), WORKERS, id="0", mkstream=True)
    first, second = App(redis_url, claim_idle=12), App(redis_url, claim_idle=30)
    for app in (first, second):
        _worker(app, queue)
    async with first:
        with pytest.raises(DeclarationConflict, match=r"claim_idle=12s.*claim_idle=30s"):
            await second.start()


async def test_a_passive_worker_uses_the_queues_claim_idle_or_conflicts(
    redis_url: str, uid: str
) -> None:
    queue = f"{uid}.jobs"
    declaring, agreeing = App(redis_url, claim_idle=12), App(redis_url, passive=True)
    disagreeing = App(redis_url, passive=True, claim_idle=3)
    for app in (declaring, agreeing, disagreeing):
        _worker(app, queue)
    async with declaring, agreeing:
        with pytest.raises(DeclarationConflict, match=r"claim_idle=12s.*claim_idle=3s"):
            await disagreeing.start()


@pytest.mark.parametrize("producer_claim_idle", [None, 3])
async def test_a_producer_first_on_a_queue_records_no_claim_idle(
    redis_url: str, uid: str, producer_claim_idle: float | None
) -> None:
    queue = f"{uid}.jobs"
    options = {} if producer_claim_idle is None else {"claim_idle": producer_claim_idle}
    async with App(redis_url, **options) as producer:  # as `pigeon enqueue` does, too
        await producer.enqueue(queue, Job(1))
    first, second = App(redis_url, claim_idle=12), App(redis_url, claim_idle=3)
    for app in (first, second):
        _worker(app, queue)
    async with first:  # the first worker records its own
        with pytest.raises(DeclarationConflict, match=r"claim_idle=12s.*claim_idle=3s"):
            await second.start()


async def test_a_queue_a_producer_made_is_new_not_older(
    redis_url: str, prefix: str, raw: Redis, uid: str
) -> None:
    queue, stream = f"{uid}.jobs", Keys(prefix).queue(f"{uid}.jobs")
    async with App(redis_url) as producer:
        for n in (1, 2):
            await producer.enqueue(queue, Job(n))
    ids = await _held_elsewhere(raw, stream, {1: 3_000, 2: 6_000})
    worker, seen = App(redis_url), []
    _worker(worker, queue, seen)
    async with worker:
        await wait_for(lambda: 2 in seen, timeout=5, what="the job idle for over 5 s")
    assert seen == [2], "a job idle for less than 5 s was claimed"
    assert await _owner(raw, stream, ids[0]) == ELSEWHERE


async def test_claim_idle_changes_after_its_settings_key_is_deleted(
    redis_url: str, prefix: str, raw: Redis, uid: str
) -> None:
    queue = f"{uid}.jobs"
    before, after = App(redis_url, claim_idle=12), App(redis_url, claim_idle=20)
    for app in (before, after):
        _worker(app, queue)
    async with before:
        pass
    await raw.delete(Keys(prefix).settings(queue))  # with the queue's workers stopped
    async with App(redis_url) as producer:  # a producer on the way changes nothing
        await producer.enqueue(queue, Job(1))
    async with after:
        pass
    assert await raw.hget(Keys(prefix).settings(queue), "claim_idle_ms") == b"20000"
