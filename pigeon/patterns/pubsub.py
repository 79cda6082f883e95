"""Publish-subscribe: every subscriber gets every event; a group shares them among its members."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pigeon import subjects
from pigeon.codecs import Decoder
from pigeon.errors import DecodeError
from pigeon.failures import (
    delivery_limit_failure,
    log_failure,
    over_delivery_limit,
    returns_of,
    stops_the_handler,
)
from pigeon.handlers import HandlerSpec
from pigeon.message import Envelope, Message
from pigeon.middleware import CallNext, Middleware, handle_chain, run_send
from pigeon.transports.base import Delivery, DirectCall, Events, Subscription, Transport
from pigeon.transports.cutoff import Held, Kind
from pigeon.transports.runner import own_cancel_pending

PATTERN = "subscribe"

F = TypeVar("F", bound=Callable[..., Any])

checked: set[str] = set()
"""Subjects ``App.publish`` found well formed (``check``): a set lookup costs ~200 instructions
a message, a call of ``subjects.validate`` (an ``lru_cache``) ~700."""


@dataclass(frozen=True, slots=True)
class Subscriber:
    """A handler of events on ``subject``; see ``App.subscribe``."""

    subject: str
    handler: HandlerSpec
    group: str | None
    durable: str | None
    concurrency: int
    delivery_limit: int
    middleware: tuple[Middleware, ...] = ()
    max_pending: int | None = None
    chain: CallNext | None = field(init=False, default=None, repr=False, compare=False)
    plain: tuple[Decoder, Callable[[Any], Awaitable[Any]]] | None = field(
        init=False, default=None, repr=False, compare=False
    )
    """``(decode, fn)`` of a plain handler (``HandlerSpec.plain``) without middleware."""
    direct: DirectCall | None = field(init=False, default=None, repr=False, compare=False)
    """What a transport may call instead of ``handle`` (see ``transports.base.DirectCall``): a
    plain handler without middleware of a subscription that is not durable."""

    def __post_init__(self) -> None:
        chain = handle_chain(self.middleware, self.handler.call_message)
        object.__setattr__(self, "chain", chain)
        if chain is None and self.handler.plain:
            object.__setattr__(self, "plain", (self.handler.decode, self.handler.fn))
            if self.durable is None:
                direct = (self.handler.decode, self.handler.fn, self.failed)
                object.__setattr__(self, "direct", direct)

    def held(self) -> Held:
        """What this subscriber's calls hold, for the line saying some were cut off at close."""
        label = f"subscriber {self.handler.name} of {self.subject!r}"
        kind: Kind = "event"
        if self.durable is not None:
            label, kind = f"{label} (durable {self.durable!r})", "durable"
        elif self.group is not None:
            label, kind = f"{label} (group {self.group!r})", "group"
        return Held(label, kind, self.handler.runs == "thread")

    async def start(self, transport: Transport) -> Subscription:
        """Subscribe on ``transport``'s events; returns once the broker delivers to it."""
        return await transport.events.subscribe(
            self.subject,
            self.handle,
            group=self.group,
            durable=self.durable,
            concurrency=self.concurrency,
            max_pending=self.max_pending,
        )

    async def handle(self, delivery: Delivery) -> None:
        """Decode and call; a bad payload or a failing handler is logged, and the event acked."""
        envelope = delivery.envelope
        if delivery.returns != 0 and over_delivery_limit(delivery, self.delivery_limit):
            await self._drop_over_limit(delivery)  # only durable subscriptions get here
            return
        handler = self.handler
        try:
            if self.plain is not None:  # the common case, without a call of its own
                decode, fn = self.plain
                await fn(decode(envelope.body, envelope.content_type, envelope.headers))
            elif self.chain is None:
                body = handler.decode(envelope.body, envelope.content_type, envelope.headers)
                await handler.call(body, envelope, delivery.subject, delivery.attempt)
            else:
                message = Message.of(
                    envelope, delivery.subject, delivery.attempt, PATTERN, self.subject
                )
                await self.chain(message)
        except BaseException as exc:
            self.failed(delivery, exc)
        if self.durable is not None and (withdrawal := own_cancel_pending()) is not None:
            await withdrawal  # the handler cancelled its own task: not the ack (durable's waits)
        if (acking := delivery.ack()) is not None:
            await acking

    def failed(self, delivery: Delivery, error: BaseException) -> None:
        """Log ``error``, raised by decoding or handling ``delivery``: an undecodable event is
        dropped, a failing handler's event too (subscribers do not retry). Re-raises it if it
        is the handler being stopped (``stops_the_handler``)."""
        envelope = delivery.envelope
        if isinstance(error, DecodeError):
            what, level = "dropped undecodable event", logging.WARNING
        elif stops_the_handler(error):
            raise error
        else:
            what, level = f"subscriber {self.handler.name} failed", logging.ERROR
        log_failure(what, delivery.subject, envelope, 1, error, level)

    async def _drop_over_limit(self, delivery: Delivery) -> None:
        """A durable subscription's event whose deliveries kept ending unsettled: dropped."""
        returns = returns_of(delivery)
        failure = delivery_limit_failure(returns, returns, self.subject)
        error = RuntimeError(failure.message)
        log_failure("dropped event", delivery.subject, delivery.envelope, delivery.attempt, error)
        if (acking := delivery.ack()) is not None:
            await acking


def check(subject: str) -> None:
    """``subjects.validate(subject)`` (raises its ``ConfigurationError``), remembered in
    ``checked``, which is emptied when it reaches 4,096 subjects."""
    subjects.validate(subject)
    if len(checked) >= 4096:
        checked.clear()
    checked.add(subject)


async def publish_through(
    events: Events,
    send: tuple[Callable[..., Awaitable[Any]], ...],
    envelope: Envelope,
    subject: str,
) -> None:
    """Publish ``envelope`` on ``subject`` through the ``send`` middleware steps."""

    def deliver(message: Message) -> Awaitable[None]:
        return events.publish(message.subject, message.envelope())

    await run_send(send, Message.outgoing(envelope, subject, "publish"), deliver)


async def raise_at_await(error: Exception) -> None:
    """Raise ``error`` where this is awaited. ``App.publish`` returns the transport's coroutine
    (no coroutine of its own, ~1,000 instructions per event) and checks the subject and encodes
    the event at the call: what fails there (``ConfigurationError``, ``EncodeError``, a closed
    transport's ``BrokerError``) is raised at the await, as from an ``async def``, never at the
    call, which may be an argument of ``asyncio.gather`` or ``create_task``."""
    raise error


def coroutine_function(fn: F) -> F:
    """Mark ``fn``, a plain function returning a coroutine, as a coroutine function, so that
    ``unittest.mock`` (``create_autospec``, ``AsyncMock(spec=...)``, ``patch``) and Starlette's
    background tasks await what it returns. ``asyncio.iscoroutinefunction`` is true of it (its
    ``_is_coroutine`` marker on 3.11); ``inspect.iscoroutinefunction`` from Python 3.12 on
    (``inspect.markcoroutinefunction``), not on 3.11, which has no way to say so."""
    mark = getattr(inspect, "markcoroutinefunction", None)
    if mark is not None:
        marked: F = mark(fn)
        return marked
    fn._is_coroutine = asyncio.coroutines._is_coroutine  # type: ignore[attr-defined]
    return fn
