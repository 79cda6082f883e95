"""What waits on a Redis Streams work queue: two round trips of reads, no writes.

Acknowledged and dead-lettered entries are deleted from the queue's stream, so the stream holds
exactly the jobs waiting and those in workers' hands. One ``MULTI`` reads ``XINFO GROUPS`` (the
group ``workers``' pending entries and last delivered id), ``XINFO CONSUMERS``, ``XLEN`` of the
stream and of ``<queue>.dlq``, and the server's ``TIME``. Entries a closing worker handed back
(held by ``RETURNED`` until a worker claims them) count as ready, not unacked. ``consumers``
counts the group's consumers seen within ``claim_idle`` seconds (a worker that stopped less than
that ago still counts). When something is ready, a second round trip reads the oldest ready
entry's id (its first part is the server's time when it was added, in ms): the first entry after
the last delivered one, or the oldest handed back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from pigeon.transports.base import Backlog, unknown_queue
from pigeon.transports.redis.errors import translated
from pigeon.transports.redis.topology import RETURNED, WORKERS, Keys

if TYPE_CHECKING:
    from redis.asyncio import Redis


async def read(redis: Redis, url: str, keys: Keys, queue: str, claim_idle: float) -> Backlog:
    """The backlog of work queue ``queue`` now; ``ConfigurationError`` if it does not exist."""
    stream = keys.queue(queue)
    with translated(url, f"reading the backlog of {queue!r}"):
        async with redis.pipeline(transaction=True) as pipe:
            pipe.xinfo_groups(stream)
            pipe.xinfo_consumers(stream, WORKERS)
            pipe.xlen(stream)
            pipe.xlen(keys.dead_letters(queue))
            pipe.time()
            groups, consumers, length, dead, now = await pipe.execute(raise_on_error=False)
        group = _workers(groups)
        if group is None or isinstance(consumers, ResponseError):
            raise unknown_queue(queue, url)
        returned = sum(int(c["pending"]) for c in consumers if c["name"] == RETURNED.encode())
        unacked = int(group["pending"]) - returned
        ready = int(length) - unacked
        live = [c for c in consumers if c["name"] != RETURNED.encode()]
        seen = sum(1 for c in live if int(c["idle"]) < claim_idle * 1000)
        now_ms = now[0] * 1000 + now[1] // 1000
        age = await _oldest_age(redis, stream, group, returned, now_ms) if ready > 0 else 0.0
    return Backlog(ready, unacked, int(dead), seen, age)


def _workers(groups: Any) -> dict[str, Any] | None:
    """The group ``workers`` of an ``XINFO GROUPS`` answer; ``None`` for no stream or group."""
    if isinstance(groups, ResponseError):
        return None
    return next((g for g in groups if g["name"] == WORKERS.encode()), None)


async def _oldest_age(
    redis: Redis, stream: str, group: dict[str, Any], returned: int, now_ms: int
) -> float | None:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xrange(stream, min=b"(" + group["last-delivered-id"], count=1)
        if returned:
            pipe.xpending_range(stream, WORKERS, "-", "+", 1, consumername=RETURNED)
        answers = await pipe.execute()
    ids = [entry[0] for entry in answers[0]]
    if returned:
        ids += [entry["message_id"] for entry in answers[1]]
    if not ids:
        return 0.0  # taken between the two reads
    oldest = min(int(entry_id.split(b"-")[0]) for entry_id in ids)
    return max(0.0, (now_ms - oldest) / 1000)
