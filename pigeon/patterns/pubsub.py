"""Publish-subscribe: every subscriber gets every event; a group shares them among its members."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from pigeon.codecs import Codec
from pigeon.errors import DecodeError
from pigeon.failures import delivery_limit_failure, log_failure, over_delivery_limit, returns_of
from pigeon.handlers import HandlerSpec
from pigeon.observe import Observers, Outcome
from pigeon.patterns.outgoing import envelope_for
from pigeon.transports.base import Delivery, Events, Subscription, Transport

PATTERN = "subscribe"


@dataclass(frozen=True, slots=True)
class Subscriber:
    """A handler of events on ``subject``; see ``App.subscribe``."""

    subject: str
    handler: HandlerSpec
    group: str | None
    durable: str | None
    concurrency: int
    observers: Observers
    delivery_limit: int

    async def start(self, transport: Transport) -> Subscription:
        """Subscribe on ``transport``'s events; returns once the broker delivers to it."""
        return await transport.events.subscribe(
            self.subject,
            self.handle,
            group=self.group,
            durable=self.durable,
            concurrency=self.concurrency,
        )

    async def handle(self, delivery: Delivery) -> None:
        """Decode and call; a bad payload or a failing handler is logged, and the event acked."""
        if not self.observers:
            await self._process(delivery)
            return
        with self.observers.handling(PATTERN, self.subject, delivery.envelope.headers):
            outcome = await self._process(delivery)
            self.observers.outcome(PATTERN, self.subject, outcome)

    async def _process(self, delivery: Delivery) -> Outcome:
        envelope = delivery.envelope
        if delivery.returns != 0 and over_delivery_limit(delivery, self.delivery_limit):
            return await self._drop_over_limit(delivery)  # only durable subscriptions get here
        outcome = Outcome.PROCESSED
        try:
            body = self.handler.decode_body(envelope)
            await self.handler.call(body, envelope, delivery.subject, delivery.attempt)
        except DecodeError as exc:
            outcome = Outcome.FAILED
            log_failure(
                "dropped undecodable event", delivery.subject, envelope, 1, exc, logging.WARNING
            )
        except Exception as exc:
            outcome = Outcome.FAILED
            log_failure(
                f"subscriber {self.handler.name} failed", delivery.subject, envelope, 1, exc
            )
        await delivery.ack()
        return outcome

    async def _drop_over_limit(self, delivery: Delivery) -> Outcome:
        """A durable subscription's event whose deliveries kept ending unsettled: dropped."""
        returns = returns_of(delivery)
        failure = delivery_limit_failure(returns, returns, self.subject)
        error = RuntimeError(failure.message)
        log_failure("dropped event", delivery.subject, delivery.envelope, delivery.attempt, error)
        await delivery.ack()
        return Outcome.FAILED


def publish(
    events: Events,
    subject: str,
    obj: Any,
    codec: Codec | None,
    headers: dict[str, str] | None,
    observers: Observers,
) -> Awaitable[None]:
    """Encode ``obj`` now and publish it on ``subject``; the awaitable completes once the broker
    accepted it."""
    envelope = envelope_for(obj, codec, headers)
    if observers:
        observers.sending(PATTERN, subject, envelope.headers)
    return events.publish(subject, envelope)
