"""A durable subscription's ``claim_idle`` is recorded with it, as a work queue's is: a
subscriber killed mid-event has it delivered to another member within seconds by default, a
member that does not set ``claim_idle`` adopts the recorded one, one that sets another gets
``DeclarationConflict``, and a durable stream an older pigeon made (its group there, nothing
recorded) keeps the 30 s its older subscribers renew their claims for."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from pigeon import App, DeclarationConflict, Message
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_for
from pigeon.transports.redis.topology import SUBSCRIBERS, Keys
from tests.crash import killed_event_comes_back

RECOVERY = 7.0
"""Seconds from the kill to the event's next delivery, at most (claim_idle 5 s for a durable
subscription made by an App that sets none, a claim every second, the survivor's start)."""

ELSEWHERE = "elsewhere"
"""The consumer name of a member in another process, which the tests play with a raw client."""

DURABLE = "audit"


def _member(app: App, subject: str, seen: list[int] | None = None) -> None:
    @app.subscribe(subject, durable=DURABLE, concurrency=4)
    async def audit(job: Job, msg: Message) -> None:
        if seen is not None:
            seen.append(job.n)


async def _held_elsewhere(raw: Redis, stream: str, idle_ms: dict[int, int]) -> list[bytes]:
    """Take every ready event of ``stream`` as the consumer ``ELSEWHERE`` and make the n-th one
    (counting from 1) look idle for ``idle_ms[n]`` ms, as events of a member that has not
    renewed its claims for that long; their entry ids."""
    read = await raw.xreadgroup(SUBSCRIBERS, ELSEWHERE, {stream: ">"}, count=len(idle_ms))
    ids = [entry_id for entry_id, _ in read[0][1]]
    assert len(ids) == len(idle_ms)
    for n, entry_id in enumerate(ids, 1):
        await raw.xclaim(
            stream, SUBSCRIBERS, ELSEWHERE, 0, [entry_id], idle=idle_ms[n], justid=True
        )
    return ids


async def _owner(raw: Redis, stream: str, entry_id: bytes) -> str:
    pending = await raw.xpending_range(stream, SUBSCRIBERS, entry_id, entry_id, 1)
    return str(pending[0]["consumer"], "utf-8")


async def _publish(url: str, subject: str, *numbers: int) -> None:
    async with App(url) as publisher:
        for n in numbers:
            await publisher.publish(subject, Job(n))


async def test_a_killed_subscribers_event_comes_back_within_seconds(
    redis_url: str, uid: str
) -> None:
    attempt, after = await killed_event_comes_back(redis_url, f"{uid}.audit", DURABLE, RECOVERY)
    assert attempt == 2
    assert after < RECOVERY, f"came back {after:.1f}s after the kill"


async def test_a_new_durable_subscription_records_5s(
    redis_url: str, prefix: str, raw: Redis, uid: str
) -> None:
    subject = f"{uid}.audit"
    stream = Keys(prefix).durable_stream(DURABLE, subject)
    declaring = App(redis_url)
    _member(declaring, subject)
    async with declaring:
        pass
    assert await raw.hget(Keys(prefix).durable_settings(DURABLE, subject), "claim_idle_ms") == (
        b"5000"
    )
    await _publish(redis_url, subject, 1, 2)
    ids = await _held_elsewhere(raw, stream, {1: 3_000, 2: 6_000})
    member, seen = App(redis_url), []
    _member(member, subject, seen)
    async with member:
        await wait_for(lambda: 2 in seen, timeout=5, what="the event idle for over 5 s")
    assert seen == [2], "an event idle for less than 5 s was claimed"
    assert await _owner(raw, stream, ids[0]) == ELSEWHERE


async def test_members_must_agree_on_claim_idle(
    redis_url: str, prefix: str, raw: Redis, uid: str
) -> None:
    subject = f"{uid}.audit"
    first, second, third = (App(redis_url, claim_idle=s) for s in (12, 3, 12))
    for app in (first, second, third):
        _member(app, subject)
    async with first:
        with pytest.raises(
            DeclarationConflict,
            match=r"durable subscription 'audit'.*claim_idle=12s.*claim_idle=3s.*leave claim_idle",
        ):
            await second.start()
        async with third:
            pass
    settings = Keys(prefix).durable_settings(DURABLE, subject)
    assert await raw.hget(settings, "claim_idle_ms") == b"12000"


async def test_a_member_that_does_not_set_claim_idle_adopts_the_subscriptions(
    redis_url: str, prefix: str, raw: Redis, uid: str
) -> None:
    subject = f"{uid}.audit"
    stream = Keys(prefix).durable_stream(DURABLE, subject)
    declaring = App(redis_url, claim_idle=20)
    _member(declaring, subject)
    async with declaring:  # records 20 s, and stops
        pass
    await _publish(redis_url, subject, 1, 2)
    ids = await _held_elsewhere(raw, stream, {1: 10_000, 2: 21_000})
    adopting, seen = App(redis_url), []
    _member(adopting, subject, seen)
    async with adopting:
        await wait_for(lambda: 2 in seen, timeout=5, what="the event idle for over 20 s")
    assert seen == [2], "an event idle for less than the subscription's claim_idle was claimed"
    assert await _owner(raw, stream, ids[0]) == ELSEWHERE


async def _older_durable(raw: Redis, keys: Keys, subject: str) -> str:
    """Make the durable subscription as an older pigeon did: its stream and consumer group,
    bound to ``subject``, and nothing recorded; its stream."""
    stream = keys.durable_stream(DURABLE, subject)
    await raw.xgroup_create(stream, SUBSCRIBERS, id="0", mkstream=True)
    await raw.sadd(keys.exact_routes(subject), stream)
    return stream


async def test_a_durable_subscription_made_by_an_older_pigeon_keeps_30s(
    redis_url: str, prefix: str, raw: Redis, uid: str
) -> None:
    subject, keys = f"{uid}.audit", Keys(prefix)
    stream = await _older_durable(raw, keys, subject)
    await _publish(redis_url, subject, 1, 2)
    ids = await _held_elsewhere(raw, stream, {1: 8_000, 2: 31_000})
    member, seen = App(redis_url), []
    _member(member, subject, seen)
    async with member:
        await wait_for(lambda: 2 in seen, timeout=5, what="the event idle for over 30 s")
    assert seen == [2], "an event an older subscriber renews every 10 s was claimed after 8 s"
    assert await _owner(raw, stream, ids[0]) == ELSEWHERE
    assert await raw.hget(keys.durable_settings(DURABLE, subject), "claim_idle_ms") == b"30000"


async def test_a_member_that_sets_claim_idle_on_an_older_durable_records_it(
    redis_url: str, prefix: str, raw: Redis, uid: str
) -> None:
    subject = f"{uid}.audit"
    await _older_durable(raw, Keys(prefix), subject)
    first, second = App(redis_url, claim_idle=12), App(redis_url, claim_idle=30)
    for app in (first, second):
        _member(app, subject)
    async with first:
        with pytest.raises(DeclarationConflict, match=r"claim_idle=12s.*claim_idle=30s"):
            await second.start()


async def test_a_member_whose_stream_was_deleted_records_its_claim_idle_again(
    redis_url: str, prefix: str, raw: Redis, uid: str
) -> None:
    subject, keys = f"{uid}.audit", Keys(prefix)
    settings = keys.durable_settings(DURABLE, subject)
    member, seen = App(redis_url, claim_idle=12), []
    _member(member, subject, seen)

    async def recorded() -> bool:
        return await raw.hget(settings, "claim_idle_ms") is not None

    async with member:
        await raw.delete(keys.durable_stream(DURABLE, subject), settings)
        await wait_for(recorded, what="the claim idle recorded again")
        assert await raw.hget(settings, "claim_idle_ms") == b"12000"
        await _publish(redis_url, subject, 1)
        await wait_for(lambda: seen == [1], what="an event after the stream came back")
