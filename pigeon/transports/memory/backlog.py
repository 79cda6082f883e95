"""What waits on a memory work queue: exact counts, read from the broker's own state."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from pigeon.transports.base import Backlog, unknown_queue

if TYPE_CHECKING:
    from pigeon.transports.memory.transport import MemoryTransport


def read(transport: MemoryTransport, queue: str) -> Backlog:
    """The backlog of work queue ``queue`` now; every number is exact.

    ``oldest_age`` is measured from the head job's timestamp (when it was sent): a delayed job
    that fell due counts its delay too; a replayed dead letter counts from its replay, as on
    NATS and Redis. Raises ``ConfigurationError`` for an unknown queue.
    """
    transport.check()
    known = transport.broker.existing_work_queue(queue)
    if known is None:
        raise unknown_queue(queue, transport.url)
    ready, unacked, dead, consumers, head = known.counts()
    age = 0.0 if head is None else max(0.0, time.time() - head)
    return Backlog(ready, unacked, dead, consumers, age)
