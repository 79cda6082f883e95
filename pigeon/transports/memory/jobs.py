"""Work queues and their dead letters on the memory broker."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from pigeon import headers as h
from pigeon.message import Envelope
from pigeon.transports.base import Backlog, Handler
from pigeon.transports.memory import backlog
from pigeon.transports.memory.consumer import MemorySubscription
from pigeon.transports.memory.topology import Item, MemoryQueue, Tapped

if TYPE_CHECKING:
    from pigeon.transports.memory.transport import MemoryTransport


class MemoryJobs:
    """``Jobs`` of a ``MemoryTransport``: queues declared on first use with the App's settings."""

    def __init__(self, transport: MemoryTransport) -> None:
        self._transport = transport

    async def enqueue(self, queue: str, envelope: Envelope, *, delay: float = 0.0) -> None:
        self._transport.check(envelope)
        work_queue = self._work_queue(queue, strict=False)
        broker = self._transport.broker
        if broker.taps:
            broker.tell(Tapped("enqueued", queue, envelope, work_queue, delay=max(delay, 0.0)))
        if work_queue.full and delay <= 0:
            await work_queue.wait_room()
        work_queue.put_later(Item(envelope, queue), delay)

    async def consume(
        self, queue: str, handler: Handler, *, concurrency: int
    ) -> MemorySubscription:
        self._transport.check()
        return self._transport.start(self._work_queue(queue, strict=True), handler, concurrency)

    async def exists(self, queue: str) -> bool:
        """Whether the work queue ``queue`` exists (a worker or a producer used it)."""
        return self._existing(queue) is not None

    async def dead_letters(self, queue: str, limit: int | None = None) -> list[Envelope]:
        known = self._existing(queue)
        return list(known.dead[:limit]) if known else []

    async def replay_dead_letters(self, queue: str, limit: int | None = None) -> int:
        known = self._existing(queue)
        if known is None:
            return 0
        moved = known.dead[:limit]
        del known.dead[: len(moved)]
        broker = self._transport.broker
        for envelope in moved:
            replayed = envelope.without_headers(h.FAILURE_HEADERS)
            if broker.taps:
                broker.tell(Tapped("replayed", queue, replayed, known))
            known.put(Item(replayed, queue, queued_at=time.time()))
        return len(moved)

    async def purge_dead_letters(self, queue: str) -> int:
        known = self._existing(queue)
        if known is None:
            return 0
        count = len(known.dead)
        known.dead.clear()
        return count

    async def backlog(self, queue: str) -> Backlog:
        return backlog.read(self._transport, queue)

    def _work_queue(self, name: str, *, strict: bool) -> MemoryQueue:
        """Only a worker declares the queue's settings; a producer uses the queue as it is."""
        limit = self._transport.settings.delivery_limit
        return self._transport.broker.work_queue(name, limit, strict=strict)

    def _existing(self, name: str) -> MemoryQueue | None:
        self._transport.check()
        return self._transport.broker.existing_work_queue(name)
