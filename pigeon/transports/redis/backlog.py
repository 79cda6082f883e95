"""What waits on a Redis Streams work queue: two round trips of reads, no writes.

Acknowledged and dead-lettered entries are deleted from the queue's stream, so the stream holds
exactly the jobs waiting and those in workers' hands. One ``MULTI`` reads ``XINFO GROUPS`` (the
group ``workers``' pending entries and last delivered id), ``XINFO CONSUMERS``, ``XLEN`` of the
stream and of ``<queue>.dlq``, the queue's live consumers and the size of its delayed set, and
the server's ``TIME``. Entries a closing worker handed back (held by ``RETURNED`` until a worker
claims them) count as ready, not unacked; so do delayed jobs that fell due (a worker's next
fetch moves them onto the stream). ``consumers`` counts the workers whose heartbeat (every third
of their ``claim_idle``) is current: a worker that closes stops counting at once, one that died
within its ``claim_idle``. When something is ready, a second round trip reads the oldest ready
entry's id (its first part is the server's time when it was added, in ms): the first entry after
the last delivered one, or the oldest handed back; and the due delayed jobs, whose age counts
from when they fell due.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from pigeon.transports.base import Backlog, unknown_queue
from pigeon.transports.redis.errors import translated
from pigeon.transports.redis.topology import RETURNED, WORKERS, Keys

if TYPE_CHECKING:
    from redis.asyncio import Redis


@dataclass(frozen=True, slots=True)
class _Heads:
    """What the second round trip reads from: where ready entries and due delayed jobs start."""

    stream: str
    delayed: str
    last_delivered: bytes
    returned: int
    delayed_count: int
    now_ms: int


async def read(redis: Redis, url: str, keys: Keys, queue: str) -> Backlog:
    """The backlog of work queue ``queue`` now; ``ConfigurationError`` if it does not exist."""
    stream = keys.queue(queue)
    with translated(url, f"reading the backlog of {queue!r}"):
        async with redis.pipeline(transaction=True) as pipe:
            pipe.xinfo_groups(stream)
            pipe.xinfo_consumers(stream, WORKERS)
            pipe.xlen(stream)
            pipe.xlen(keys.dead_letters(queue))
            pipe.zrange(keys.consumers(queue), 0, -1, withscores=True)
            pipe.zcard(keys.delayed(queue))
            pipe.time()
            answers = await pipe.execute(raise_on_error=False)
        groups, consumers, length, dead, live, delayed, now = answers
        group = _workers(groups)
        if group is None or isinstance(consumers, ResponseError):
            raise unknown_queue(queue, url)
        returned = sum(int(c["pending"]) for c in consumers if c["name"] == RETURNED.encode())
        unacked = int(group["pending"]) - returned
        now_ms = now[0] * 1000 + now[1] // 1000
        heads = _Heads(
            stream, keys.delayed(queue), group["last-delivered-id"], returned, delayed, now_ms
        )
        waiting = int(length) > unacked or delayed
        due, age = await _due_and_age(redis, heads) if waiting else (0, 0.0)
    ready = int(length) - unacked + due
    seen = sum(1 for _, until in live if until > now_ms)
    return Backlog(ready, unacked, int(dead), seen, age)


def _workers(groups: Any) -> dict[str, Any] | None:
    """The group ``workers`` of an ``XINFO GROUPS`` answer; ``None`` for no stream or group."""
    if isinstance(groups, ResponseError):
        return None
    return next((g for g in groups if g["name"] == WORKERS.encode()), None)


async def _due_and_age(redis: Redis, heads: _Heads) -> tuple[int, float]:
    """The due delayed jobs, and the age of the oldest ready job (0.0 when none is)."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xrange(heads.stream, min=b"(" + heads.last_delivered, count=1)
        pipe.zcount(heads.delayed, "-inf", heads.now_ms)
        pipe.zrange(heads.delayed, 0, 0, withscores=True)
        if heads.returned:
            pipe.xpending_range(heads.stream, WORKERS, "-", "+", 1, consumername=RETURNED)
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
