"""pigeon and plain redis-py clients, both ways: jobs, dead letters and events."""

from __future__ import annotations

import asyncio
import json

from redis.asyncio import Redis

from pigeon import App, Message
from pigeon.testing.waiting import wait_dead_letters, wait_for


async def test_a_job_added_by_a_plain_client_reaches_a_worker(
    redis_url: str, prefix: str, raw: Redis, uid: str
) -> None:
    app = App(redis_url)
    got: list[tuple[dict[str, int], Message]] = []

    @app.worker(f"{uid}.jobs")
    async def work(job: dict[str, int], msg: Message) -> None:
        got.append((job, msg))

    async with app:
        await raw.xadd(f"{prefix}q:{uid}.jobs", {"body": b'{"n": 1}', "tenant": "acme"})
        await wait_for(lambda: len(got) == 1)

        async def deleted() -> bool:  # acknowledged jobs take no room
            return await raw.xlen(f"{prefix}q:{uid}.jobs") == 0

        await wait_for(deleted, what="the acknowledged job deleted")
    job, msg = got[0]
    assert job == {"n": 1}
    assert msg.headers == {"tenant": "acme"}
    assert msg.attempt == 1


async def test_a_job_added_before_any_pigeon_app_ran_is_kept(
    redis_url: str, prefix: str, raw: Redis, uid: str
) -> None:
    await raw.xadd(f"{prefix}q:{uid}.early", {"body": b'{"n": 2}'})
    app = App(redis_url)
    got: list[dict[str, int]] = []

    @app.worker(f"{uid}.early")
    async def work(job: dict[str, int]) -> None:
        got.append(job)

    async with app:
        await wait_for(lambda: got == [{"n": 2}])


async def test_a_dead_letter_reads_with_xrange(
    redis_url: str, prefix: str, raw: Redis, uid: str
) -> None:
    app = App(redis_url)

    @app.worker(f"{uid}.fail")
    async def work(job: dict[str, int]) -> None:
        raise LookupError("no such customer")

    async with app:
        await app.enqueue(f"{uid}.fail", {"n": 3}, headers={"tenant": "acme"})
        await wait_dead_letters(app, f"{uid}.fail", 1)
    [(_, fields)] = await raw.xrange(f"{prefix}q:{uid}.fail:dlq")
    assert json.loads(fields[b"body"]) == {"n": 3}
    assert fields[b"content-type"] == b"application/json"
    assert fields[b"tenant"] == b"acme"
    assert fields[b"x-pigeon-error-type"] == b"LookupError"
    assert fields[b"x-pigeon-error-message"] == b"no such customer"
    assert fields[b"x-pigeon-queue"] == f"{uid}.fail".encode()
    assert fields[b"x-pigeon-attempts"] == b"1"


async def test_events_both_ways_with_plain_pubsub(
    redis_url: str, prefix: str, raw: Redis, uid: str
) -> None:
    app = App(redis_url)
    got: list[dict[str, int]] = []

    @app.subscribe(f"{uid}.events.*")
    async def on_event(event: dict[str, int]) -> None:
        got.append(event)

    pubsub = raw.pubsub()
    await pubsub.subscribe(f"{prefix}ev:{uid}.out")
    async with app:
        await raw.publish(f"{prefix}ev:{uid}.events.created", b'{"n": 4}')
        await wait_for(lambda: got == [{"n": 4}], what="a plain PUBLISH reaching a subscriber")
        await app.publish(f"{uid}.out", {"n": 5})
        message = None
        async with asyncio.timeout(10):
            while message is None:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
    await pubsub.aclose()
    payload: bytes = message["data"]
    assert payload.endswith(b'{"n":5}'), "the body follows pigeon's one line of metadata"
    assert payload.split(b"\n")[1].startswith(b"{"), payload
