"""Work-queue operations: storing jobs, delayed redelivery, dead letters and the delivery limit.

Every job is published persistent, ``mandatory`` and confirmed to the default exchange with the
queue's name as routing key, so it is stored durably before a call returns; a job returned because
its queue is gone redeclares the queue and is published again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import aiormq.exceptions as amqp
from aio_pika.abc import AbstractRobustChannel, AbstractRobustQueue
from aiormq.abc import DeliveredMessage

from pigeon.errors import BrokerError
from pigeon.message import Envelope
from pigeon.transports.base import Handler
from pigeon.transports.rabbitmq import dead_letters, wire
from pigeon.transports.rabbitmq.errors import translated
from pigeon.transports.rabbitmq.publisher import Publisher
from pigeon.transports.rabbitmq.topology import Declarer, checked_name, dead_letter_queue

if TYPE_CHECKING:
    from pigeon.transports.rabbitmq.consumer import RabbitSubscription
    from pigeon.transports.rabbitmq.transport import RabbitMQTransport

log = logging.getLogger("pigeon")


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

    async def store(
        self, queue: str, envelope: Envelope, counts: wire.Counts | None = None
    ) -> None:
        """Store ``envelope`` on work queue ``queue`` (declared on first use)."""
        await self._declarer.work_queue(queue)
        extra = counts.headers() if counts is not None and counts != wire.Counts() else None
        await self._store(queue, queue, envelope, extra, f"enqueueing on {queue!r}")

    async def retry(
        self, queue: str, envelope: Envelope, counts: wire.Counts, delay: float
    ) -> None:
        """Put ``envelope`` on a retry queue of ``queue`` for ``delay`` seconds, with ``counts``."""
        name = await self._declarer.retry_queue(queue, max(0, round(delay * 1000)))
        await self._store(queue, name, envelope, counts.headers(), f"redelivering on {queue!r}")

    async def bury(self, queue: str, envelope: Envelope) -> None:
        """Store ``envelope`` (failure headers included) in the dead letters of ``queue``."""
        await self._declarer.dead_letters(queue)
        dlq = dead_letter_queue(queue)
        await self._store(queue, dlq, envelope, None, f"dead-lettering on {queue!r}")

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
                        exchange="",
                        routing_key=routing_key,
                        properties=properties,
                        mandatory=True,
                    )
                    return
                except amqp.PublishError:  # the queue is gone: declare it again
                    await self._redeclare(queue, routing_key)
            raise BrokerError(
                f"{self._url}: {action}: the broker returned the message twice; is something "
                f"deleting the queue {routing_key!r}?"
            )

    async def _redeclare(self, queue: str, routing_key: str) -> None:
        self._declarer.forget(queue)
        self._declarer.forget(routing_key)
        if routing_key.startswith(f"{queue}.retry."):
            await self._declarer.retry_queue(queue, int(routing_key.rsplit(".", 1)[1]))
        else:  # the work queue or its dead-letter queue
            await self._declarer.work_queue(queue)


class RabbitJobs:
    """``Jobs`` of a ``RabbitMQTransport``: durable work queues (quorum by default) with
    ``<queue>.dlq`` and ``<queue>.retry.<ms>`` beside them."""

    def __init__(self, transport: RabbitMQTransport) -> None:
        self._transport = transport

    async def enqueue(self, queue: str, envelope: Envelope) -> None:
        self._transport.check(envelope)
        await self._transport.job_store.store(checked_name(queue, "work queue"), envelope)

    async def consume(
        self, queue: str, handler: Handler, *, concurrency: int
    ) -> RabbitSubscription:
        transport = self._transport
        transport.check()
        await transport.declarer.work_queue(checked_name(queue, "work queue"))
        await transport.declarer.dead_letters(queue)
        passive = transport.topology.passive
        arguments = transport.topology.work_queue_arguments(queue)

        async def declare(channel: AbstractRobustChannel) -> AbstractRobustQueue:
            if passive:
                return await channel.declare_queue(queue, passive=True)
            return await channel.declare_queue(queue, durable=True, arguments=arguments)

        action = f"consuming {queue!r}"
        return await transport.consume(queue, declare, handler, concurrency, action, jobs=True)

    async def dead_letters(self, queue: str, limit: int | None = None) -> list[Envelope]:
        self._transport.check()
        name = checked_name(queue, "work queue")
        return await dead_letters.peek(self._transport.declarer, name, limit)

    async def replay_dead_letters(self, queue: str, limit: int | None = None) -> int:
        self._transport.check()
        name = checked_name(queue, "work queue")
        return await dead_letters.replay(self._transport.declarer, name, limit)

    async def purge_dead_letters(self, queue: str) -> int:
        self._transport.check()
        return await dead_letters.purge(self._transport.declarer, checked_name(queue, "work queue"))
