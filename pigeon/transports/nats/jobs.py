"""Work queues on JetStream: a work-queue stream per queue, one durable pull consumer shared by
every worker, and a dead-letter stream beside it (see ``topology`` for the names)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from pigeon import delays
from pigeon import headers as h
from pigeon.errors import BrokerError
from pigeon.failures import describe
from pigeon.message import Envelope, Failure
from pigeon.transports.base import Backlog, Delivery, Handler, Subscription
from pigeon.transports.nats import backlog, wire
from pigeon.transports.nats.consumer import JetStreamDelivery, PullConsumer
from pigeon.transports.nats.dead_letters import room
from pigeon.transports.nats.errors import STREAM_NOT_FOUND, JetStreamError
from pigeon.transports.nats.recovery import Recovery
from pigeon.transports.nats.topology import MOVERS, QUEUE_SUBJECTS, WORKERS, QueueNames

if TYPE_CHECKING:
    from pigeon.transports.nats.transport import NatsTransport

log = logging.getLogger("pigeon")

MOVER_CONCURRENCY = 64
"""Delayed jobs a worker's mover handles at once (each a nak, or a store and an ack)."""


class NatsJobs:
    """``Jobs`` of a ``NatsTransport``; each queue is declared on first use per connection."""

    def __init__(self, transport: NatsTransport) -> None:
        self._transport = transport

    async def enqueue(self, queue: str, envelope: Envelope, *, delay: float = 0.0) -> None:
        """Store a job, keeping room for its dead letter (``MessageTooLarge`` if it leaves
        none: see ``dead_letters.room``)."""
        transport = self._transport
        transport.check(envelope)
        with transport.sends(f"enqueueing on {queue!r}"):
            names = await self._queue(queue, strict=False)
            headers = wire.outgoing(envelope)
            subject = names.subject
            if delay > 0:
                subject = names.delay_subject
                headers[h.DUE] = delays.due_header(delay)
            await transport.api.store(
                subject,
                envelope.body,
                headers,
                redeclare=self._redeclarer(names),
                reserve=room(names),
            )

    async def consume(self, queue: str, handler: Handler, *, concurrency: int) -> Subscription:
        transport = self._transport
        transport.check()
        names = await self._queue(queue, strict=True)
        workers = await self._workers(names, handler, concurrency)
        try:
            movers = await transport.start_pull(self._movers(names))
        except BaseException:
            await workers.close(0)
            raise
        return Both(workers, movers)

    def _movers(self, names: QueueNames) -> PullConsumer:
        """A consumer of the delayed jobs: each due job is stored on the work queue (keyed by its
        place in the delay stream, so a retried move is dropped as a duplicate), then acked; a job
        not due yet is nak'd with the time it has left."""
        api, redeclare = self._transport.api, self._redeclarer(names)

        async def move(delivery: Delivery) -> None:
            assert isinstance(delivery, JetStreamDelivery)
            left = delays.seconds_left(delivery.envelope.headers.get(h.DUE))
            try:
                if left > 0:
                    await delivery.redeliver(left)
                    return
                job = delivery.envelope.without_headers((h.DUE,))
                headers = wire.outgoing(job)
                headers[wire.ORIGINAL_ID] = job.message_id
                headers[wire.MSG_ID] = f"{names.delay_stream}.{delivery.stream_seq}"
                await api.store(names.subject, job.body, headers, redeclare=redeclare)
                await delivery.ack()
            except Exception as exc:  # the job stays in the delay stream and comes again
                log.warning(
                    "pigeon: moving a due job onto %r failed: %s", names.queue, describe(exc)
                )
                with contextlib.suppress(Exception):
                    await delivery.redeliver(1.0)

        transport = self._transport
        return PullConsumer(
            transport.client,
            transport.url,
            names.delay_stream,
            MOVERS,
            move,
            concurrency=MOVER_CONCURRENCY,
            ack_wait=transport.ack_wait,
            recovery=self._recovery(names, names.delay_stream),
        )

    async def _workers(self, names: QueueNames, handler: Handler, concurrency: int) -> PullConsumer:
        transport = self._transport

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
            recovery=self._recovery(names, names.stream),
        )
        return await transport.start_pull(consumer)

    async def exists(self, queue: str) -> bool:
        """Whether the work queue ``queue`` exists (its stream is there)."""
        self._transport.check()
        try:
            await self._transport.api.call(f"STREAM.INFO.{QueueNames.of(queue).stream}")
        except JetStreamError as exc:
            if exc.err_code != STREAM_NOT_FOUND:
                raise
            return False
        return True

    async def dead_letters(self, queue: str, limit: int | None = None) -> list[Envelope]:
        self._transport.check()
        letters = await self._transport.dead_letter_store.read(QueueNames.of(queue), limit)
        return [envelope for envelope, _ in letters]

    async def replay_dead_letters(self, queue: str, limit: int | None = None) -> int:
        self._transport.check()
        store = self._transport.dead_letter_store
        if not await store.read(QueueNames.of(queue), 1):
            return 0  # declaring nothing: a misspelt queue stays unknown
        names = await self._queue(queue, strict=False)
        return await store.replay(names, limit, self._redeclarer(names))

    async def purge_dead_letters(self, queue: str) -> int:
        self._transport.check()
        return await self._transport.dead_letter_store.purge(QueueNames.of(queue))

    async def backlog(self, queue: str) -> Backlog:
        self._transport.check()
        if not self._transport.connected:  # fail now: retrying would show old numbers as live
            raise BrokerError(
                f"reading the backlog of {queue!r}: disconnected from {self._transport.url}, "
                "reconnecting"
            )
        return await backlog.read(self._transport.api, self._transport.url, queue)

    async def _queue(self, queue: str, *, strict: bool) -> QueueNames:
        """The names of ``queue``, declared on first use on this connection. Only a worker
        (``strict``) declares the queue's settings; a producer or a reader of dead letters uses
        the queue as it exists, and declares it with this App's settings only if it is missing."""
        declared = self._transport.declared
        names = declared.get((queue, strict)) or declared.get((queue, True))
        if names is None:
            names = QueueNames.of(queue)
            await self._declare(names, strict=strict)
            declared[(queue, strict)] = names
        return names

    async def _declare(self, names: QueueNames, *, strict: bool = False) -> None:
        declarer = self._transport.declarer
        await declarer.queue(names, strict=strict)
        await declarer.delays(names, strict=strict)
        await declarer.check_taken_over()

    def _recovery(self, names: QueueNames, stream: str) -> Recovery:
        """A worker's: the queue's streams and consumers, declared again with its settings."""

        async def redeclare() -> str:
            await self._declare(names, strict=True)
            return stream

        return Recovery(self._transport.api, redeclare)

    def _redeclarer(self, names: QueueNames) -> Callable[[], Awaitable[None]]:
        async def redeclare() -> None:
            await self._declare(names)

        return redeclare


class Both:
    """The subscription of a work queue's consumer and its delayed jobs' mover, closed together."""

    def __init__(self, workers: PullConsumer, movers: PullConsumer) -> None:
        self._consumers = (workers, movers)

    async def close(self, timeout: float) -> None:
        await asyncio.gather(*(consumer.close(timeout) for consumer in self._consumers))
