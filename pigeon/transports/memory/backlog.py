"""What waits on a memory work queue or durable subscription: exact counts, read from the
broker's own state."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from pigeon.transports.base import Backlog, unknown_durable, unknown_queue

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


def durable_queue_name(subject: str, durable: str) -> str:
    """The broker's queue of the durable subscription ``durable`` of ``subject`` (a durable
    subscription is its name and subject, as a JetStream consumer is; ``repr`` keeps the parts
    of a name apart whatever they contain)."""
    return f"durable:{durable!r}:{subject!r}"


def read_durable(transport: MemoryTransport, subject: str, durable: str) -> Backlog:
    """The backlog of the durable subscription ``durable`` of ``subject`` now, exact;
    ``dead_letters`` is ``None``. Raises ``ConfigurationError`` for an unknown subscription."""
    transport.check()
    known = transport.broker.queues.get(durable_queue_name(subject, durable))
    if known is None:
        raise unknown_durable(subject, durable, transport.url)
    ready, unacked, _, consumers, head = known.counts()
    age = 0.0 if head is None else max(0.0, time.time() - head)
    return Backlog(ready, unacked, None, consumers, age)
