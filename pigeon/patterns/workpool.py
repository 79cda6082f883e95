"""Work pool: durable jobs shared by competing workers, retried, redelivered, dead-lettered."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pigeon.codecs import Codec
from pigeon.message import Failure
from pigeon.patterns.handler import HandlerSpec
from pigeon.patterns.outgoing import envelope_for
from pigeon.retry import NEVER_RETRY, Redeliver, Retry
from pigeon.transports.base import Delivery, Subscription, Transport

log = logging.getLogger("pigeon")


@dataclass(frozen=True, slots=True)
class Worker:
    """The handler of jobs on ``queue``; see ``App.worker``.

    Failure handling, in order: ``retry`` in process (the job is held), ``redeliver`` through the
    broker (the slot is freed), then the dead letters (or, with ``dead_letter=False``, a log line
    and the job is dropped). Decode errors and ``Reject`` skip the first two.
    """

    queue: str
    handler: HandlerSpec
    concurrency: int
    retry: Retry | None
    redeliver: Redeliver | None
    dead_letter: bool

    async def start(self, transport: Transport) -> Subscription:
        """Consume ``queue`` on ``transport``."""
        return await transport.consume(self.queue, self.handle, concurrency=self.concurrency)

    async def handle(self, delivery: Delivery) -> None:
        """Process one job; ack it only after the handler returned."""
        calls_per_delivery = self.retry.attempts if self.retry else 1
        calls_before = (delivery.attempt - 1) * calls_per_delivery
        calls = 0

        async def call(number: int) -> None:
            nonlocal calls
            calls = number
            await self.handler.call(
                body, delivery.envelope, delivery.subject, calls_before + number
            )

        try:
            body = self.handler.decode_body(delivery.envelope)
            if self.retry is None:
                await call(1)
            else:
                await self.retry.call(call)
        except Exception as exc:
            await self._failed(delivery, exc, max(1, calls_before + calls))
        else:
            await delivery.ack()

    async def _failed(self, delivery: Delivery, error: Exception, attempts: int) -> None:
        envelope = delivery.envelope
        where = f"queue={self.queue} message_id={envelope.message_id} attempt={attempts}"
        if self.redeliver is not None and not isinstance(error, NEVER_RETRY):
            delay = self.redeliver.delay_after(delivery.attempt)
            if delay is not None:
                log.warning("pigeon: job failed, redelivering in %gs %s: %r", delay, where, error)
                await delivery.redeliver(delay)
                return
        if self.dead_letter:
            log.error("pigeon: job failed, dead-lettered %s: %r", where, error)
            await delivery.dead_letter(Failure.of(error, attempts=attempts, queue=self.queue))
        else:
            log.error("pigeon: job failed, discarded (dead_letter=False) %s: %r", where, error)
            await delivery.ack()


async def enqueue(
    transport: Transport,
    queue: str,
    obj: Any,
    codec: Codec | None,
    headers: dict[str, str] | None = None,
) -> None:
    """Encode ``obj`` and store it on ``queue``; returns once the broker stored it durably."""
    await transport.enqueue(queue, envelope_for(obj, codec, headers))
