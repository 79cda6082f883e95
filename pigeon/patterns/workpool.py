"""Work pool: durable jobs shared by competing workers, retried, redelivered, dead-lettered."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pigeon.codecs import Codec
from pigeon.message import Failure, Message
from pigeon.middleware import CallNext, Middleware, handle_chain, run_send
from pigeon.patterns.handler import HandlerSpec
from pigeon.patterns.logging import log_failure
from pigeon.patterns.outgoing import envelope_for
from pigeon.retry import NEVER_RETRY, Redeliver, Retry
from pigeon.transports.base import Delivery, Subscription, Transport

PATTERN = "worker"


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
    middleware: tuple[Middleware, ...] = ()
    chain: CallNext | None = field(init=False, default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "chain", handle_chain(self.middleware, self.handler.call_message))

    async def start(self, transport: Transport) -> Subscription:
        """Consume ``queue`` on ``transport``."""
        return await transport.consume(self.queue, self.handle, concurrency=self.concurrency)

    async def handle(self, delivery: Delivery) -> None:
        """Process one job; ack it only after the handler returned."""
        calls_per_delivery = self.retry.attempts if self.retry else 1
        calls_before = (delivery.attempt - 1) * calls_per_delivery
        calls = 0
        envelope, chain = delivery.envelope, self.chain

        async def call(number: int) -> None:
            nonlocal calls
            calls = number
            attempt = calls_before + number
            if chain is None:
                await self.handler.call(body, envelope, delivery.subject, attempt)
            else:
                await chain(Message.of(envelope, delivery.subject, attempt, PATTERN, self.queue))

        try:
            body = self.handler.decode_body(envelope) if chain is None else None
            if self.retry is None:
                await call(1)
            else:
                await self.retry.call(call)
        except Exception as exc:
            await self._failed(delivery, exc, max(1, calls_before + calls))
            return
        await delivery.ack()

    async def _failed(self, delivery: Delivery, error: Exception, attempts: int) -> None:
        envelope = delivery.envelope
        if self.redeliver is not None and not isinstance(error, NEVER_RETRY):
            delay = self.redeliver.delay_after(delivery.attempt)
            if delay is not None:
                what = f"job failed, redelivering in {delay:g}s"
                log_failure(what, self.queue, envelope, attempts, error, logging.WARNING)
                await delivery.redeliver(delay)
                return
        if self.dead_letter:
            log_failure("job failed, dead-lettered", self.queue, envelope, attempts, error)
            await delivery.dead_letter(Failure.of(error, attempts=attempts, queue=self.queue))
            return
        what = "job failed, discarded (dead_letter=False)"
        log_failure(what, self.queue, envelope, attempts, error)
        await delivery.ack()


async def enqueue(
    transport: Transport,
    queue: str,
    obj: Any,
    codec: Codec | None,
    headers: dict[str, str] | None,
    send: tuple[Callable[..., Awaitable[Any]], ...] = (),
) -> None:
    """Encode ``obj`` and store it on ``queue`` (through the ``send`` middleware steps); returns
    once the broker stored it durably."""
    envelope = envelope_for(obj, codec, headers)
    if not send:
        await transport.enqueue(queue, envelope)
        return

    async def deliver(message: Message) -> None:
        await transport.enqueue(message.subject, message.envelope())

    await run_send(send, Message.of(envelope, queue, pattern="enqueue", route=queue), deliver)
