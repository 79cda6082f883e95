"""Publish-subscribe on the memory broker: a queue per subscription, bound to its subject."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from pigeon.message import Envelope, new_id
from pigeon.transports.base import Backlog, Handler
from pigeon.transports.memory.backlog import durable_queue_name, read_durable
from pigeon.transports.memory.consumer import MemorySubscription
from pigeon.transports.memory.topology import MemoryQueue, Tapped, new_item

if TYPE_CHECKING:
    from pigeon.transports.memory.transport import MemoryTransport


class MemoryEvents:
    """``Events`` of a ``MemoryTransport``: a plain subscription gets a queue of its own, a group
    shares one, a durable subscription's queue outlives it."""

    def __init__(self, transport: MemoryTransport) -> None:
        self._transport = transport
        self._published = 0

    async def publish(self, subject: str, envelope: Envelope) -> None:
        transport = self._transport
        if (
            envelope.headers
            or not transport.connected
            or len(envelope.body) > transport.max_message_size
        ):
            transport.check(envelope)
        broker = transport.broker
        if broker.taps:
            broker.tell(Tapped("published", subject, envelope))
        for queue in broker.events.match(subject):
            if len(queue.ready) >= queue.capacity:
                await queue.wait_room()  # at once if nobody consumes it, or inside a handler
            if queue.waiters:
                queue.put(new_item(envelope, subject))
            else:  # put's usual case, without a call (~550 instructions per event and queue)
                queue.ready.append(new_item(envelope, subject))
        self._published += 1
        if self._published % 128 == 0:
            await asyncio.sleep(0)  # a busy publisher must not starve its subscribers

    async def subscribe(
        self,
        subject: str,
        handler: Handler,
        *,
        group: str | None,
        durable: str | None,
        concurrency: int,
        max_pending: int | None = None,
    ) -> MemorySubscription:
        transport = self._transport
        transport.check()
        if durable is not None:
            queue = transport.broker.event_queue(
                durable_queue_name(subject, durable), subject, keep=True
            )
        elif group is not None:
            queue = transport.broker.event_queue(
                f"group:{group!r}:{subject!r}", subject, keep=False
            )
        else:
            queue = transport.broker.event_queue(f"sub:{new_id()}", subject, keep=False)
        if max_pending is not None and durable is None:  # a durable one takes its free slots
            _hold_at_most(queue, max_pending - concurrency)
        return transport.start(queue, handler, concurrency)

    async def backlog(self, subject: str, durable: str) -> Backlog:
        return read_durable(self._transport, subject, durable)


def _hold_at_most(queue: MemoryQueue, waiting: int) -> None:
    """Make publishers wait while ``queue`` has ``waiting`` events ready (at least 1: a queue of
    no room never takes one), or fewer if another member of its group asked for fewer."""
    capacity = min(queue.capacity, max(1, waiting))
    queue.capacity, queue.low_water = capacity, capacity // 2
