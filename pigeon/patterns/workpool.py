"""Work pool: durable jobs shared by competing workers, retried, redelivered, dead-lettered."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pigeon.codecs import Codec
from pigeon.failures import delivery_limit_failure, log_failure, over_delivery_limit, returns_of
from pigeon.handlers import HandlerSpec
from pigeon.message import Failure
from pigeon.observe import Observers, Outcome
from pigeon.patterns.outgoing import envelope_for
from pigeon.retry import NEVER_RETRY, Redeliver, Retry
from pigeon.transports.base import Delivery, Jobs, Subscription, Transport

PATTERN = "worker"


@dataclass(frozen=True, slots=True)
class Worker:
    """The handler of jobs on ``queue``; see ``App.worker``.

    Failure handling, in order: ``retry`` in process (the job is held), ``redeliver`` through the
    broker (the slot is freed), then the dead letters (or, with ``dead_letter=False``, a log line
    and the job is dropped). Decode errors and ``Reject`` skip the first two. A job whose
    deliveries ended unsettled ``delivery_limit`` times is dead-lettered without being handled.
    """

    queue: str
    handler: HandlerSpec
    concurrency: int
    retry: Retry | None
    redeliver: Redeliver | None
    dead_letter: bool
    observers: Observers
    delivery_limit: int

    async def start(self, transport: Transport) -> Subscription:
        """Consume ``queue`` on ``transport``'s jobs."""
        return await transport.jobs.consume(self.queue, self.handle, concurrency=self.concurrency)

    async def handle(self, delivery: Delivery) -> None:
        """Process one job; ack it only after the handler returned."""
        if not self.observers:
            await self._process(delivery)
            return
        with self.observers.handling(PATTERN, self.queue, delivery.envelope.headers):
            outcome = await self._process(delivery)
            if outcome in (Outcome.REDELIVERED, Outcome.DEAD_LETTERED):
                self.observers.outcome(PATTERN, self.queue, Outcome.FAILED)
            self.observers.outcome(PATTERN, self.queue, outcome)

    async def _process(self, delivery: Delivery) -> Outcome:
        calls_before = calls_in_earlier_deliveries(delivery, self.retry)
        if over_delivery_limit(delivery, self.delivery_limit):
            failure = delivery_limit_failure(returns_of(delivery), calls_before, self.queue)
            return await self._dead_letter(delivery, failure, RuntimeError(failure.message))
        calls = 0

        async def call(number: int) -> None:
            nonlocal calls
            calls = number
            if number > 1 and self.observers:
                self.observers.outcome(PATTERN, self.queue, Outcome.RETRIED)
            attempt = calls_before + number
            await self.handler.call(body, delivery.envelope, delivery.subject, attempt)

        try:
            body = self.handler.decode_body(delivery.envelope)
            if self.retry is None:
                await call(1)
            else:
                await self.retry.call(call)
        except Exception as exc:
            return await self._failed(delivery, exc, max(1, calls_before + calls))
        await delivery.ack()
        return Outcome.PROCESSED

    async def _failed(self, delivery: Delivery, error: Exception, attempts: int) -> Outcome:
        envelope = delivery.envelope
        if self.redeliver is not None and not isinstance(error, NEVER_RETRY):
            delay = self.redeliver.delay_after(delivery.attempt)
            if delay is not None:
                what = f"job failed, redelivering in {delay:g}s"
                log_failure(what, self.queue, envelope, attempts, error, logging.WARNING)
                await delivery.redeliver(delay)
                return Outcome.REDELIVERED
        return await self._dead_letter(
            delivery, Failure.of(error, attempts=attempts, queue=self.queue), error
        )

    async def _dead_letter(
        self, delivery: Delivery, failure: Failure, error: BaseException
    ) -> Outcome:
        envelope, attempts = delivery.envelope, failure.attempts
        if self.dead_letter:
            log_failure("job failed, dead-lettered", self.queue, envelope, attempts, error)
            await delivery.dead_letter(failure)
            return Outcome.DEAD_LETTERED
        what = "job failed, discarded (dead_letter=False)"
        log_failure(what, self.queue, envelope, attempts, error)
        await delivery.ack()
        return Outcome.FAILED


def calls_in_earlier_deliveries(delivery: Delivery, retry: Retry | None) -> int:
    """Handler calls made for this message before this delivery, from the broker's counts.

    A delivery handed back by ``Redeliver`` made every call ``retry`` allows; one that ended
    unsettled (its worker stopped or died, perhaps mid-retry) is counted as one call, the fewest
    it can have made. Where the broker cannot tell the two apart (``returns`` is ``None``: NATS),
    every earlier delivery is taken as handed back. ``Message.attempt`` and ``Failure.attempts``
    build on this.
    """
    returns = delivery.returns or 0
    redelivered = delivery.attempt - 1 - returns
    return returns + redelivered * (retry.attempts if retry else 1)


async def enqueue(
    jobs: Jobs,
    queue: str,
    obj: Any,
    codec: Codec | None,
    headers: dict[str, str] | None,
    observers: Observers,
    delay: float = 0.0,
) -> None:
    """Encode ``obj`` and store it on ``queue``, due in ``delay`` seconds; returns once the
    broker stored it durably."""
    envelope = envelope_for(obj, codec, headers)
    if observers:
        observers.sending(PATTERN, queue, envelope.headers)
    await jobs.enqueue(queue, envelope, delay=delay)
