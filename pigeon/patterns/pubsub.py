"""Publish-subscribe: every subscriber gets every event; a group shares them among its members."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from pigeon.codecs import Codec
from pigeon.errors import DecodeError
from pigeon.patterns.handler import HandlerSpec
from pigeon.patterns.outgoing import envelope_for
from pigeon.transports.base import Delivery, Subscription, Transport

log = logging.getLogger("pigeon")


@dataclass(frozen=True, slots=True)
class Subscriber:
    """A handler of events on ``subject``; see ``App.subscribe``."""

    subject: str
    handler: HandlerSpec
    group: str | None
    durable: str | None
    concurrency: int

    async def start(self, transport: Transport) -> Subscription:
        """Subscribe on ``transport``; returns once the broker delivers to it."""
        return await transport.subscribe(
            self.subject,
            self.handle,
            group=self.group,
            durable=self.durable,
            concurrency=self.concurrency,
        )

    async def handle(self, delivery: Delivery) -> None:
        """Decode and call; a bad payload or a failing handler is logged, and the event acked."""
        envelope = delivery.envelope
        try:
            body = self.handler.decode_body(envelope)
            await self.handler.call(body, envelope, delivery.subject, delivery.attempt)
        except DecodeError as exc:
            log.warning(
                "pigeon: dropped undecodable event subject=%s message_id=%s: %s",
                delivery.subject,
                envelope.message_id,
                exc,
            )
        except Exception:
            log.exception(
                "pigeon: subscriber %s failed subject=%s message_id=%s attempt=%d",
                self.handler.name,
                delivery.subject,
                envelope.message_id,
                delivery.attempt,
            )
        await delivery.ack()


def publish(
    transport: Transport,
    subject: str,
    obj: Any,
    codec: Codec | None,
    headers: dict[str, str] | None = None,
) -> Awaitable[None]:
    """Encode ``obj`` now and publish it on ``subject``; the awaitable completes once the broker
    accepted it."""
    return transport.publish(subject, envelope_for(obj, codec, headers))
