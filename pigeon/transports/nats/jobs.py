"""Work queues on JetStream: a work-queue stream per queue, one durable pull consumer shared by
every worker, and a dead-letter stream beside it (see ``topology`` for the names)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from pigeon.message import Envelope, Failure
from pigeon.transports.base import Handler, Subscription
from pigeon.transports.nats import wire
from pigeon.transports.nats.consumer import JetStreamDelivery, PullConsumer
from pigeon.transports.nats.topology import QUEUE_SUBJECTS, WORKERS, QueueNames

if TYPE_CHECKING:
    from pigeon.transports.nats.transport import NatsTransport


class NatsJobs:
    """``Jobs`` of a ``NatsTransport``; each queue is declared on first use per connection."""

    def __init__(self, transport: NatsTransport) -> None:
        self._transport = transport

    async def enqueue(self, queue: str, envelope: Envelope) -> None:
        self._transport.check(envelope)
        names = await self._queue(queue)
        headers = wire.outgoing(envelope)
        await self._transport.api.store(
            names.subject, envelope.body, headers, redeclare=self._redeclarer(names)
        )

    async def consume(self, queue: str, handler: Handler, *, concurrency: int) -> Subscription:
        transport = self._transport
        transport.check()
        names = await self._queue(queue)

        async def sink(delivery: JetStreamDelivery, failure: Failure) -> None:
            await transport.dead_letter_store.add(
                names, delivery.envelope, delivery.stream_seq, failure, self._redeclarer(names)
            )

        consumer = PullConsumer(
            transport.client,
            transport.url,
            names.stream,
            WORKERS,
            handler,
            concurrency=concurrency,
            ack_wait=transport.ack_wait,
            strip=len(QUEUE_SUBJECTS),
            sink=sink,
        )
        return await transport.start_pull(consumer)

    async def dead_letters(self, queue: str, limit: int | None = None) -> list[Envelope]:
        self._transport.check()
        letters = await self._transport.dead_letter_store.read(QueueNames.of(queue), limit)
        return [envelope for envelope, _ in letters]

    async def replay_dead_letters(self, queue: str, limit: int | None = None) -> int:
        self._transport.check()
        names = await self._queue(queue)
        store = self._transport.dead_letter_store
        return await store.replay(names, limit, self._redeclarer(names))

    async def purge_dead_letters(self, queue: str) -> int:
        self._transport.check()
        return await self._transport.dead_letter_store.purge(QueueNames.of(queue))

    async def _queue(self, queue: str) -> QueueNames:
        """The names of ``queue``, declared on first use on this connection."""
        declared = self._transport.declared
        names = declared.get(queue)
        if names is None:
            names = QueueNames.of(queue)
            await self._transport.declarer.queue(names)
            declared[queue] = names
        return names

    def _redeclarer(self, names: QueueNames) -> Callable[[], Awaitable[None]]:
        async def redeclare() -> None:
            await self._transport.declarer.queue(names)

        return redeclare
