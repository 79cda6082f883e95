"""Work-queue operations: storing jobs, delayed redelivery, dead letters and the delivery limit.

Every job is published persistent, ``mandatory`` and confirmed to the default exchange with the
queue's name as routing key, so it is stored durably before a call returns; a job returned because
its queue is gone redeclares the queue and is published again.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import aiormq.exceptions as amqp
from aiormq.abc import DeliveredMessage

from pigeon.errors import BrokerError
from pigeon.message import Envelope, Failure
from pigeon.transports.rabbitmq import wire
from pigeon.transports.rabbitmq.errors import translated
from pigeon.transports.rabbitmq.publisher import Publisher
from pigeon.transports.rabbitmq.topology import Declarer, dead_letter_queue

log = logging.getLogger("pigeon")


class Jobs:
    """Stores jobs on work queues, their retry queues and their dead-letter queues."""

    def __init__(self, publisher: Publisher, declarer: Declarer, url: str) -> None:
        self._publisher = publisher
        self._declarer = declarer
        self._url = url
        self.delivery_limit = declarer.topology.delivery_limit
        self.counts_returns = not declarer.topology.quorum
        """Classic queues do not count returns: pigeon does, from the ``redelivered`` flag."""

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
        await self._declarer.work_queue(queue)
        dlq = dead_letter_queue(queue)
        await self._store(queue, dlq, envelope, None, f"dead-lettering on {queue!r}")

    def must_screen(self, message: DeliveredMessage, counts: wire.Counts) -> bool:
        """Whether a delivery needs ``screen`` before its handler: it was returned unsettled."""
        if self.counts_returns:
            return bool(message.redelivered)
        return counts.returns >= self.delivery_limit

    async def screen(self, queue: str, envelope: Envelope, counts: wire.Counts) -> bool:
        """Deal with a job whose earlier delivery ended unsettled; ``True`` if a handler should
        get it now. Over the delivery limit it is dead-lettered; on a classic queue it is stored
        again with its returns counted (the broker does not count them)."""
        if self.counts_returns:
            counts = wire.Counts(counts.attempt + 1, counts.returns + 1)
        if counts.returns >= self.delivery_limit:
            await self.bury(queue, self._over_limit(queue, envelope, counts))
            return False
        if self.counts_returns:
            await self.store(queue, envelope, counts)
            return False
        return True

    def _over_limit(self, queue: str, envelope: Envelope, counts: wire.Counts) -> Envelope:
        error = RuntimeError(
            f"delivered {counts.returns} times without being settled (its worker kept stopping "
            "or dying); dead-lettered instead of delivered again"
        )
        failure = Failure.of(error, attempts=counts.attempt - 1, queue=queue)
        failure = replace(failure, error_type="DeliveryLimitExceeded")
        log.error("pigeon: %s dead-lettered %s: %s", queue, envelope.message_id, error)
        return envelope.with_headers(failure.as_headers())

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
