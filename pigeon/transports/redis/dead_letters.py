"""The dead-letter stream of each work queue (``<p>q:<queue>:dlq``): storing, reading, replaying and
purging.

A dead letter is a stream entry in the job form (``wire.job_fields``): the original body, headers
and message id, plus the failure's ``x-pigeon-*`` headers, so ``XRANGE`` shows it as it is. Storing
a letter, acknowledging the job and deleting it happen in one ``MULTI``/``EXEC``: there is no
moment at which the job is in neither place.
"""

from __future__ import annotations

import logging
from typing import Any

from redis.asyncio import Redis

from pigeon import headers as h
from pigeon.message import Envelope, Failure
from pigeon.transports.redis import wire
from pigeon.transports.redis.consumer import StreamDelivery
from pigeon.transports.redis.errors import translated
from pigeon.transports.redis.topology import WORKERS, Keys

log = logging.getLogger("pigeon")

_REPLAY = """
if not redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])[1] then return 0 end
if not pcall(function() redis.call('XADD', KEYS[2], '*', unpack(ARGV, 2)) end) then return -1 end
redis.call('XDEL', KEYS[1], ARGV[1])
return 1
"""
"""Move one letter, unless another replay took it first (0) or it cannot be moved (-1)."""


class DeadLetters:
    """Reads and writes the dead-letter streams of work queues."""

    def __init__(self, redis: Redis, url: str, keys: Keys) -> None:
        self._redis = redis
        self._replay = redis.register_script(_REPLAY)
        self._url = url
        self._keys = keys

    async def add(self, queue: str, delivery: StreamDelivery, failure: Failure) -> None:
        """Store ``delivery`` with ``failure`` and remove it from ``queue``, atomically."""
        letter = delivery.envelope.with_headers(failure.as_headers())
        stream = self._keys.queue(queue)
        with translated(self._url, f"dead-lettering a message of {queue!r}"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xadd(self._keys.dead_letters(queue), wire.job_fields(letter))  # type: ignore[arg-type]
                pipe.xack(stream, WORKERS, delivery.entry_id)
                pipe.xdel(stream, delivery.entry_id)
                await pipe.execute()

    async def read(self, queue: str, limit: int | None) -> list[tuple[bytes, Envelope]]:
        """Up to ``limit`` dead letters of ``queue``, oldest first, each with its entry id."""
        if limit == 0:  # XRANGE's COUNT takes 1 or more
            return []
        with translated(self._url, f"reading the dead letters of {queue!r}"):
            entries: Any = await self._redis.xrange(self._keys.dead_letters(queue), count=limit)
        return [(entry_id, wire.job_of(entry_id, fields)[0]) for entry_id, fields in entries]

    async def replay(self, queue: str, limit: int | None) -> int:
        """Move up to ``limit`` dead letters back onto ``queue``, failure headers removed; each
        leaves the dead letters in the same script that stores it on the queue, and a letter two
        replays read at once moves once."""
        moved = 0
        for entry_id, letter in await self.read(queue, limit):
            if await self._move(queue, entry_id, letter.without_headers(h.FAILURE_HEADERS)):
                moved += 1
        return moved

    async def _move(self, queue: str, entry_id: bytes, job: Envelope) -> bool:
        """Move one letter back as ``job``; one that cannot be moved stays, logged."""
        fields = [part for pair in wire.job_fields(job).items() for part in pair]
        keys = [self._keys.dead_letters(queue), self._keys.queue(queue)]
        with translated(self._url, f"replaying the dead letters of {queue!r}"):
            result = await self._replay(keys=keys, args=[entry_id, *fields])
        if result == -1 or len(job.headers) > wire.MAX_HEADERS:
            log.warning(
                "pigeon: dead letter %s of %r (%d headers, at most %d) cannot go back onto the "
                "queue; it stays in the dead letters",
                entry_id.decode(),
                queue,
                len(job.headers),
                wire.MAX_HEADERS,
            )
        return bool(result == 1)

    async def purge(self, queue: str) -> int:
        """Delete every dead letter of ``queue``; returns how many there were."""
        dead = self._keys.dead_letters(queue)
        with translated(self._url, f"purging the dead letters of {queue!r}"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xlen(dead)
                pipe.delete(dead)
                count, _ = await pipe.execute()
        return int(count)
