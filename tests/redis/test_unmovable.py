"""No single message may stop a queue: a job over the header limit is refused at enqueue, and a
job that cannot go back onto its stream (written by another client, or damaged) is
dead-lettered while the jobs behind it go on; a letter that cannot be replayed stays, and the
others move."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from pigeon import App, MessageTooLarge, Redeliver
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_for
from pigeon.transports.redis.topology import Keys
from pigeon.transports.redis.wire import MAX_HEADERS

MANY = {f"h{i}": "v" for i in range(5000)}

_BURY_RAW = """
local fields = {}
for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('ZADD', KEYS[1], 0, cmsgpack.pack({ARGV[1], fields}))
"""
"""What an older writer could leave in a delayed set: a job with every field given."""


@pytest.mark.parametrize("delay", [0.0, 0.05])
async def test_a_job_over_the_header_limit_is_refused_at_enqueue(
    redis_url: str, uid: str, delay: float
) -> None:
    async with App(redis_url) as app:
        with pytest.raises(MessageTooLarge, match=f"at most {MAX_HEADERS} headers"):
            await app.enqueue(f"{uid}.jobs", Job(1), headers=MANY, delay=delay)
        await app.enqueue(f"{uid}.jobs", Job(2), headers=dict(list(MANY.items())[:MAX_HEADERS]))


async def test_an_unmovable_delayed_job_is_dead_lettered_and_the_queue_goes_on(
    redis_url: str, prefix: str, raw: Redis, uid: str
) -> None:
    queue = f"{uid}.jobs"
    done: list[int] = []
    app = App(redis_url)

    @app.worker(queue, redeliver=Redeliver(delays=(0.05,)))
    async def work(job: Job) -> None:
        done.append(job.n)

    async with app:
        delayed = Keys(prefix).delayed(queue)
        fields = ["body", '{"n": 1}', *(part for pair in MANY.items() for part in pair)]
        await raw.eval(_BURY_RAW, 1, delayed, "too-many", *fields)  # type: ignore[misc]
        await raw.zadd(delayed, {b"not msgpack at all": 0})
        await app.enqueue(queue, Job(2), delay=0.05)
        await wait_for(lambda: 2 in done, what="the job behind the unmovable ones")

        async def both_buried() -> bool:
            return len(await app.dead_letters(queue)) == 2

        await wait_for(both_buried, what="the unmovable jobs dead-lettered")
        letters = await app.dead_letters(queue)
        assert await raw.zcard(delayed) == 0
    assert done == [2]
    assert {letter.failure.type for letter in letters if letter.failure} == {"Unmovable"}
    too_many = next(letter for letter in letters if letter.body == b'{"n": 1}')
    assert too_many.failure is not None
    assert "5000 headers" in too_many.failure.message


async def test_replay_moves_what_it_can_and_leaves_an_unmovable_letter(
    redis_url: str, prefix: str, raw: Redis, uid: str
) -> None:
    queue = f"{uid}.jobs"
    done: list[int] = []
    app = App(redis_url)

    @app.worker(queue)
    async def work(job: Job) -> None:
        done.append(job.n)

    dead = Keys(prefix).dead_letters(queue)
    await raw.xadd(dead, {"body": '{"n": 1}', **MANY})
    await raw.xadd(dead, {"body": '{"n": 2}'})
    async with app:
        assert await app.replay_dead_letters(queue) == 1
        await wait_for(lambda: done == [2], what="the replayed job")
        letters = await app.dead_letters(queue)
    assert [letter.body for letter in letters] == [b'{"n": 1}']
