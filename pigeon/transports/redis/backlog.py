"""What waits on a Redis Streams work queue: two round trips of reads, no writes.

Acknowledged and dead-lettered entries are deleted from the queue's stream, so the stream holds
exactly the jobs waiting and those in workers' hands. One ``MULTI`` reads ``XINFO GROUPS`` (the
group ``workers``' pending entries and last delivered id), ``XINFO CONSUMERS``, ``XLEN`` of the
stream and of ``<p>q:<queue>:dlq``, the queue's live consumers and the size of its delayed set, and
the server's ``TIME``. Entries a closing worker handed back (held by ``RETURNED`` until a worker
claims them) count as ready, not unacked; so do delayed jobs that fell due (a worker's next
fetch moves them onto the stream). ``consumers`` counts the workers whose heartbeat (every third
of their ``claim_idle``) is current: a worker that closes stops counting once its handlers have
ended, one that died within its ``claim_idle``. When something is ready, a second round trip
reads the oldest ready entry's id (its first part is the server's time when it was added, in
ms): the first entry after the last delivered one, or the oldest handed back; and the due
delayed jobs, whose age counts from when they fell due.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from pigeon.transports.base import Backlog, unknown_durable, unknown_queue
from pigeon.transports.redis.errors import translated
from pigeon.transports.redis.topology import RETURNED, SUBSCRIBERS, WORKERS, Keys

if TYPE_CHECKING:
    from redis.asyncio import Redis


@dataclass(frozen=True, slots=True)
class _Target:
    """The keys read for one backlog: a stream and its consumer group, the delayed set, the set
    of live consumers' heartbeats, and the dead-letter stream (``None``: a subscription's)."""

    stream: str
    group: str
    delayed: str
    live: str
    dead: str | None


@dataclass(frozen=True, slots=True)
class _Heads:
    """What the second round trip reads from: where ready entries and due delayed jobs start."""

    target: _Target
    last_delivered: bytes
    returned: int
    delayed_count: int
    now_ms: int


async def read(redis: Redis, url: str, keys: Keys, queue: str) -> Backlog:
    """The backlog of work queue ``queue`` now; ``ConfigurationError`` if it does not exist."""
    target = _Target(
        keys.queue(queue),
        WORKERS,
        keys.delayed(queue),
        keys.consumers(queue),
        keys.dead_letters(queue),
    )
    with translated(url, f"reading the backlog of {queue!r}"):
        backlog = await _read(redis, target)
    if backlog is None:
        raise unknown_queue(queue, url)
    return backlog


async def read_durable(redis: Redis, url: str, keys: Keys, subject: str, durable: str) -> Backlog:
    """The backlog of the durable subscription ``durable`` of ``subject`` now (its stream, read
    as a work queue's, without dead letters); ``ConfigurationError`` if it does not exist."""
    stream = keys.durable_stream(durable, subject)
    target = _Target(stream, SUBSCRIBERS, f"{stream}:delayed", f"{stream}:consumers", None)
    with translated(url, f"reading the backlog of durable subscription {durable!r}"):
        backlog = await _read(redis, target)
    if backlog is None:
        raise unknown_durable(subject, durable, url)
    return backlog


async def _read(redis: Redis, target: _Target) -> Backlog | None:
    """The backlog of ``target`` now; ``None`` if its stream or group does not exist."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.xinfo_groups(target.stream)
        pipe.xinfo_consumers(target.stream, target.group)
        pipe.xlen(target.stream)
        pipe.zrange(target.live, 0, -1, withscores=True)
        pipe.zcard(target.delayed)
        pipe.time()
        if target.dead is not None:
            pipe.xlen(target.dead)
        answers = await pipe.execute(raise_on_error=False)
    groups, consumers, length, live, delayed, now = answers[:6]
    dead = int(answers[6]) if target.dead is not None else None
    group = _group(groups, target.group)
    if group is None or isinstance(consumers, ResponseError):
        return None
    returned = sum(int(c["pending"]) for c in consumers if c["name"] == RETURNED.encode())
    unacked = int(group["pending"]) - returned
    now_ms = now[0] * 1000 + now[1] // 1000
    heads = _Heads(target, group["last-delivered-id"], returned, delayed, now_ms)
    waiting = int(length) > unacked or delayed
    due, age = await _due_and_age(redis, heads) if waiting else (0, 0.0)
    ready = int(length) - unacked + due
    seen = sum(1 for _, until in live if until > now_ms)
    return Backlog(ready, unacked, dead, seen, age)


def _group(groups: Any, name: str) -> dict[str, Any] | None:
    """The group ``name`` of an ``XINFO GROUPS`` answer; ``None`` for no stream or group."""
    if isinstance(groups, ResponseError):
        return None
    return next((g for g in groups if g["name"] == name.encode()), None)


async def _due_and_age(redis: Redis, heads: _Heads) -> tuple[int, float]:
    """The due delayed jobs, and the age of the oldest ready job (0.0 when none is)."""
    async with redis.pipeline(transaction=False) as pipe:
        target = heads.target
        pipe.xrange(target.stream, min=b"(" + heads.last_delivered, count=1)
        pipe.zcount(target.delayed, "-inf", heads.now_ms)
        pipe.zrange(target.delayed, 0, 0, withscores=True)
        if heads.returned:
            pipe.xpending_range(target.stream, target.group, "-", "+", 1, consumername=RETURNED)
        answers = await pipe.execute()
    stamps = [int(entry[0].split(b"-")[0]) for entry in answers[0]]
    if heads.returned:
        stamps += [int(entry["message_id"].split(b"-")[0]) for entry in answers[3]]
    due = int(answers[1])
    if due:
        stamps.append(int(answers[2][0][1]))  # the soonest due, which fell due first
    if not stamps:
        return due, 0.0  # taken between the two reads
    return due, max(0.0, (heads.now_ms - min(stamps)) / 1000)
