"""Work-queue operations: storing jobs, delays, dead letters and the delivery limit.

Every job is published persistent, ``mandatory`` and confirmed, to the default exchange with the
queue's name as routing key or, delayed, into the delay ladder (see ``topology``), so it is stored
durably before a call returns; a job returned because its queue is gone redeclares the queue (and
the ladder) and is published again. A producer declares (or finds) each work queue, and the ladder,
once per connection: a job to a queue it has seen awaits no declaration, and a reconnect makes the
next job declare again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import aiormq.exceptions as amqp
from aio_pika.abc import AbstractRobustChannel, AbstractRobustQueue
from aiormq.abc import DeliveredMessage

from pigeon import delays
from pigeon import headers as h
from pigeon.errors import BrokerError
from pigeon.message import Envelope
from pigeon.transports.base import Backlog, Handler
from pigeon.transports.rabbitmq import backlog, dead_letters, restored, wire
from pigeon.transports.rabbitmq.errors import translated
from pigeon.transports.rabbitmq.publisher import Publisher
from pigeon.transports.rabbitmq.topology import (
    DELAY_TARGET,
    Declarer,
    checked_name,
    dead_letter_queue,
    delay_level,
    delay_route,
)
from pigeon.transports.sends import READ

if TYPE_CHECKING:
    from pigeon.transports.rabbitmq.consumer import RabbitSubscription
    from pigeon.transports.rabbitmq.transport import RabbitMQTransport

log = logging.getLogger("pigeon")

EARLY_TOLERANCE = 1.0
"""Seconds a job may come before its due time and still be handed to a worker: more than the
clocks of two hosts kept by NTP differ, so that only delays beyond the ladder go down it again."""

LADDER_HEADERS = (DELAY_TARGET, h.DUE)
"""Headers of the delay ladder, removed before a handler sees a job."""


class JobStore:
    """Stores jobs on work queues, their retry queues and their dead-letter queues."""

    def __init__(self, publisher: Publisher, declarer: Declarer, url: str) -> None:
        self._publisher = publisher
        self._declarer = declarer
        self._url = url
        topology = declarer.topology
        self.delivery_limit = topology.delivery_limit
        self.counts_returns = not topology.quorum or topology.passive
        """Classic queues do not count returns: pigeon does, from the ``redelivered`` flag. An
        adopted queue (passive) may be either kind: pigeon counts where the broker did not."""
        self._declared: set[str] = set()
        """Work queues declared (or found) on this connection: storing a job there awaits no
        declaration. A declaration that failed (``DeclarationConflict``, a passive App's missing
        queue) is not in it, so the next job tries again."""
        self._ladder_declared = False
        self._connection_epoch = 0
        """Counts reconnects, so that a declaration that straddled one is not recorded."""
        declarer.on_reconnect(self._forget_declarations)

    async def store(
        self,
        queue: str,
        envelope: Envelope,
        counts: wire.Counts | None = None,
        delay: float = 0.0,
    ) -> None:
        """Store ``envelope`` on work queue ``queue`` (declared on first use), through the delay
        ladder if ``delay`` (seconds) is 1 ms or more."""
        if queue not in self._declared:
            await self._declare(queue)
        extra = counts.headers() if counts is not None and counts != wire.Counts() else None
        if round(delay * 1000) >= 1:
            await self._delay(queue, envelope, extra or {}, delay, f"enqueueing on {queue!r}")
            return
        await self._store(queue, "", queue, envelope, extra, f"enqueueing on {queue!r}")

    async def retry(
        self, queue: str, envelope: Envelope, counts: wire.Counts, delay: float
    ) -> None:
        """Send ``envelope`` down the delay ladder back to ``queue`` in ``delay`` seconds, with
        ``counts``."""
        if queue not in self._declared:
            await self._declare(queue)
        action = f"redelivering on {queue!r}"
        if round(delay * 1000) < 1:
            await self._store(queue, "", queue, envelope, counts.headers(), action)
            return
        await self._delay(queue, envelope, counts.headers(), delay, action)

    async def _delay(
        self, queue: str, envelope: Envelope, extra: dict[str, str], delay: float, action: str
    ) -> None:
        if not self._ladder_declared:
            await self._declare_ladder()
        level, routing_key = delay_route(round(delay * 1000))
        extra = {**extra, DELAY_TARGET: queue, h.DUE: delays.due_header(delay)}
        exchange = delay_level(self._declarer.topology.queue_type, level)
        await self._store(queue, exchange, routing_key, envelope, extra, action)

    async def bury(self, queue: str, envelope: Envelope) -> None:
        """Store ``envelope`` (failure headers included) in the dead letters of ``queue``."""
        await self._declarer.dead_letters(queue)
        dlq = dead_letter_queue(queue)
        await self._store(queue, "", dlq, envelope, None, f"dead-lettering on {queue!r}")

    async def hold_back(self, queue: str, envelope: Envelope, counts: wire.Counts) -> bool:
        """Send a job that came before its ``x-pigeon-due`` (a delay longer than the ladder, or
        clocks apart by more than ``EARLY_TOLERANCE``) down the ladder again for the rest, its
        counts unchanged; ``False`` (nothing done) when it is due. The caller acks the original
        once this returned ``True``."""
        left = delays.seconds_left(envelope.headers.get(h.DUE))
        if left <= EARLY_TOLERANCE:
            return False
        await self.store(queue, envelope, counts, delay=left)
        return True

    def must_screen(self, message: DeliveredMessage) -> bool:
        """Whether a delivery needs ``screen`` before its handler: on a classic queue, it was
        returned unsettled and the broker did not count it (a quorum queue's
        ``x-delivery-count``)."""
        if not (self.counts_returns and message.redelivered):
            return False
        headers = message.header.properties.headers
        return not headers or wire.BROKER_COUNT not in headers

    async def screen(
        self, queue: str, envelope: Envelope, counts: wire.Counts
    ) -> wire.Counts | None:
        """Count the return of a job from a classic queue (the broker does not): below the
        delivery limit it is stored again with its returns counted and ``None`` is returned (the
        original is then acked); at the limit its counts are returned and a handler gets it, so
        that the work pool dead-letters it."""
        counts = wire.Counts(counts.attempt + 1, counts.returns + 1)
        if counts.returns >= self.delivery_limit:  # the work pool dead-letters it
            return counts
        await self.store(queue, envelope, counts)
        return None

    async def _store(
        self,
        queue: str,
        exchange: str,
        routing_key: str,
        envelope: Envelope,
        extra: dict[str, str] | None,
        action: str,
    ) -> None:
        properties = wire.properties(envelope, extra=extra)
        with translated(self._url, action):
            for _ in range(2):
                try:
                    await self._publisher.publish(
                        envelope.body,
                        exchange=exchange,
                        routing_key=routing_key,
                        properties=properties,
                        mandatory=True,
                    )
                    return
                except amqp.PublishError:  # the queue is gone: declare it again
                    await self._redeclare(queue, exchange)
            raise BrokerError(
                f"{self._url}: {action}: the broker returned the message twice; is something "
                f"deleting the queue {routing_key!r}?"
            )

    async def _declare(self, queue: str) -> None:
        """Declare work queue ``queue`` as a producer does (one that exists is used as it is)."""
        epoch = self._connection_epoch
        await self._declarer.work_queue(queue, strict=False)
        if epoch == self._connection_epoch:
            self._declared.add(queue)

    async def _declare_ladder(self) -> None:
        epoch = self._connection_epoch
        await self._declarer.delay_ladder()
        self._ladder_declared = epoch == self._connection_epoch

    async def _redeclare(self, queue: str, exchange: str) -> None:
        self._declared.discard(queue)
        self._declarer.forget(queue)
        await self._declare(queue)
        if exchange:  # a level of the delay ladder
            self._declarer.forget_ladder()
            await self._declare_ladder()

    def _forget_declarations(self) -> None:
        """The connection is back: declare every queue, and the ladder, again on next use."""
        self._connection_epoch += 1
        for queue in self._declared:
            self._declarer.forget(queue)
        self._declared.clear()
        if self._ladder_declared:
            self._declarer.forget_ladder()
        self._ladder_declared = False


class RabbitJobs:
    """``Jobs`` of a ``RabbitMQTransport``: durable work queues (quorum by default) with
    ``<queue>.dlq`` beside them; delays go down the shared delay ladder (see ``topology``)."""

    def __init__(self, transport: RabbitMQTransport) -> None:
        self._transport = transport

    async def enqueue(self, queue: str, envelope: Envelope, *, delay: float = 0.0) -> None:
        transport = self._transport
        transport.check(envelope)
        name = checked_name(queue, "work queue")
        with transport.sends(f"enqueueing on {name!r}"):
            await transport.job_store.store(name, envelope, delay=delay)

    async def consume(
        self, queue: str, handler: Handler, *, concurrency: int
    ) -> RabbitSubscription:
        transport = self._transport
        transport.check()
        await transport.declarer.work_queue(checked_name(queue, "work queue"))
        await transport.declarer.dead_letters(queue)
        topology = transport.topology

        async def declare(channel: AbstractRobustChannel) -> AbstractRobustQueue:
            if topology.passive:
                return await channel.declare_queue(queue, passive=True)
            return await restored.work_queue(channel, topology, queue)

        action = f"consuming {queue!r}"
        return await transport.consume(queue, declare, handler, concurrency, action, jobs=True)

    async def exists(self, queue: str) -> bool:
        """Whether the work queue ``queue`` exists on the broker."""
        transport = self._transport
        transport.check()
        name = checked_name(queue, "work queue")
        with transport.sends(f"checking work queue {name!r}", READ):
            return await transport.declarer.exists(name)

    async def dead_letters(self, queue: str, limit: int | None = None) -> list[Envelope]:
        transport = self._transport
        transport.check()
        name = checked_name(queue, "work queue")
        with transport.sends(f"reading the dead letters of {name!r}", READ):
            return await dead_letters.peek(transport.declarer, name, limit)

    async def replay_dead_letters(self, queue: str, limit: int | None = None) -> int:
        transport = self._transport
        transport.check()
        name = checked_name(queue, "work queue")
        with transport.sends(f"replaying the dead letters of {name!r}", dead_letters.REPLAY):
            return await dead_letters.replay(transport.declarer, name, limit)

    async def purge_dead_letters(self, queue: str) -> int:
        transport = self._transport
        transport.check()
        name = checked_name(queue, "work queue")
        with transport.sends(f"purging the dead letters of {name!r}", dead_letters.PURGE):
            return await dead_letters.purge(transport.declarer, name)

    async def backlog(self, queue: str) -> Backlog:
        transport = self._transport
        transport.check()
        name = checked_name(queue, "work queue")
        with transport.sends(f"reading the backlog of {name!r}", READ):
            return await backlog.read(transport.declarer, transport.url, name)
