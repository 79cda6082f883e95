"""Work pool: durable jobs shared by competing workers, retried, redelivered, dead-lettered."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pigeon.codecs import Codec
from pigeon.errors import ConfigurationError
from pigeon.failures import (
    delivery_limit_failure,
    describe,
    log_failure,
    one_line,
    over_delivery_limit,
    returns_of,
    shortened,
    stops_the_handler,
)
from pigeon.handlers import HandlerSpec
from pigeon.message import Failure, Message
from pigeon.middleware import (
    CallNext,
    Middleware,
    Outcome,
    SettleHook,
    handle_chain,
    report_settled,
    run_send,
    settle_hooks,
)
from pigeon.patterns.outgoing import envelope_for
from pigeon.retry import NEVER_RETRY, Redeliver, Retry
from pigeon.transports.base import Delivery, Jobs, Subscription, Transport
from pigeon.transports.cutoff import Held
from pigeon.transports.runner import own_cancel_pending

PATTERN = "worker"


@dataclass(frozen=True, slots=True)
class Worker:
    """The handler of jobs on ``queue``; see ``App.worker``.

    Failure handling, in order: ``retry`` in process (the job is held), ``redeliver`` through the
    broker (the slot is freed), then the dead letters (or, with ``dead_letter=False``, a log line
    and the job is dropped). Decode errors and ``Reject`` skip the first two. A job whose
    deliveries ended unsettled ``delivery_limit`` times is dead-lettered without being handled.
    Middleware with ``settled`` is told each delivery's ``Outcome``.
    """

    queue: str
    handler: HandlerSpec
    concurrency: int
    retry: Retry | None
    redeliver: Redeliver | None
    dead_letter: bool
    delivery_limit: int
    middleware: tuple[Middleware, ...] = ()
    chain: CallNext | None = field(init=False, default=None, repr=False, compare=False)
    settle_hooks: tuple[SettleHook, ...] = field(init=False, default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "chain", handle_chain(self.middleware, self.handler.call_message))
        object.__setattr__(self, "settle_hooks", settle_hooks(self.middleware))

    def held(self) -> Held:
        """What this worker's calls hold, for the line saying some were cut off at close."""
        label = f"worker {self.handler.name} of queue {self.queue!r}"
        return Held(label, "job", self.handler.runs == "thread")

    async def start(self, transport: Transport) -> Subscription:
        """Consume ``queue`` on ``transport``'s jobs."""
        return await transport.jobs.consume(self.queue, self.handle, concurrency=self.concurrency)

    async def handle(self, delivery: Delivery) -> None:
        """Process one job; ack it only after the handler returned."""
        if not self.settle_hooks:
            await self._process(delivery)
            return
        outcome, calls = await self._process(delivery)
        message = Message.of(delivery.envelope, delivery.subject, calls, PATTERN, self.queue)
        await report_settled(self.settle_hooks, message, outcome)

    async def _process(self, delivery: Delivery) -> tuple[Outcome, int]:
        """Handle and settle ``delivery``; returns how, and the handler calls made so far."""
        calls_before = calls_in_earlier_deliveries(delivery, self.retry)
        if over_delivery_limit(delivery, self.delivery_limit):
            failure = delivery_limit_failure(returns_of(delivery), calls_before, self.queue)
            error = RuntimeError(failure.message)
            return await self._dead_letter(delivery, failure, error), calls_before
        calls = 0
        envelope, chain = delivery.envelope, self.chain

        async def call(number: int) -> None:
            nonlocal calls
            calls = number
            attempt = calls_before + number
            try:
                if chain is None:
                    await self.handler.call(body, envelope, delivery.subject, attempt)
                else:
                    message = Message.of(envelope, delivery.subject, attempt, PATTERN, self.queue)
                    await chain(message)
            except Exception:
                if (withdrawal := own_cancel_pending()) is not None:
                    await withdrawal  # the handler cancelled its own task: not the retry's wait
                raise
            if (withdrawal := own_cancel_pending()) is not None:
                await withdrawal  # nor the ack

        try:
            body = self.handler.decode_body(envelope) if chain is None else None
            if self.retry is None:
                await call(1)
            else:
                await self.retry.call(call)
        except BaseException as exc:
            if stops_the_handler(exc):
                raise
            attempts = max(1, calls_before + calls)
            return await self._failed(delivery, exc, attempts), attempts
        if (acking := delivery.ack()) is not None:
            await acking
        return Outcome.ACKED, calls_before + calls

    async def _failed(self, delivery: Delivery, error: BaseException, attempts: int) -> Outcome:
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
            try:
                await delivery.dead_letter(failure)
            except Exception as exc:  # the transport kept the job: it comes again
                why = f"{type(exc).__name__}: {one_line(shortened(describe(exc), 300))}"
                what = f"job failed, not dead-lettered ({why}): it stays on the queue"
                log_failure(what, self.queue, envelope, attempts, error)
                return Outcome.REDELIVERED
            log_failure("job failed, dead-lettered", self.queue, envelope, attempts, error)
            return Outcome.DEAD_LETTERED
        what = "job failed, discarded (dead_letter=False)"
        log_failure(what, self.queue, envelope, attempts, error)
        if (acking := delivery.ack()) is not None:
            await acking
        return Outcome.DISCARDED


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
    send: tuple[Callable[..., Awaitable[Any]], ...] = (),
    delay: float = 0.0,
) -> None:
    """Encode ``obj`` and store it on ``queue`` (through the ``send`` middleware steps), due in
    ``delay`` seconds; returns once the broker stored it durably."""
    envelope = envelope_for(obj, codec, headers)
    if not send:
        await jobs.enqueue(queue, envelope, delay=delay)
        return

    async def deliver(message: Message) -> None:
        await jobs.enqueue(message.subject, message.envelope(), delay=delay)

    await run_send(send, Message.outgoing(envelope, queue, "enqueue"), deliver)


def check_limit(limit: int | None) -> int | None:
    """``limit`` of the dead-letter calls, if ``None`` (all) or an int of 0 or more (0: none);
    else ``ConfigurationError``."""
    if limit is None or (isinstance(limit, int) and not isinstance(limit, bool) and limit >= 0):
        return limit
    raise ConfigurationError(f"limit={limit!r}: give an int of 0 or more, or None for all")
