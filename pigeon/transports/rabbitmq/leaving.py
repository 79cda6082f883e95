"""How a closing rpc server abandons no caller: the requests it holds unstarted, and those that
reach it while it closes, go on to another server of the subject or are answered "not served".

At the start of its close the server asks the broker (a passive ``queue.declare``) how many
consumers its queue has. If it is the last one, it first consumes the queue once more, without a
prefetch limit (a "sweeper"), so that every ready request and every new one is pushed to it at
once; then it cancels its own consumer and the sweeper. Each request the sweeper got, and each
one the server held, goes on through the rpc exchange (``pigeon.rpc``) to the servers of wildcard
subjects, as its caller would have sent it had the queue not been there (``mandatory``, confirmed,
its properties kept); if none takes it (returned), it is answered ``not_served`` (its caller
raises ``NoResponders`` at once). Then it is acked. A request that came through the rpc exchange
(the server's pattern is a wildcard: its queue is bound to a rank of it, ``ranks``) goes on
through the rank after the server's own, so that a less specific server takes it (sent to the
rpc exchange again it would come back to the same queue); with no rank after, or an owner's
queue (``passive=True``: its bindings are unknown), it is answered at once. The auto-delete
queue goes with the last consumer's cancel, empty: a request sent after that is returned to its
caller, who tries the rpc exchange itself. Acking a message of a deleted queue is no error.

A queue that may outlive its consumers (``lasting``: its owner declared it, ``passive=True``) is
swept until the server's handlers have drained, then the sweeper is cancelled: a request sent
during the drain is answered at once, not left in the queue for its caller's timeout.

If other servers consume the queue, the closing server cancels its consumer, then hands each
request it holds back to the queue (``nack``, requeued) at once: another server takes it.

Two races are left: a server that starts just after the last one counted the consumers (or, on
a lasting queue, during its drain) may see a few requests passed on or answered ``NoResponders``
(nothing ran: safe to retry), and servers closing together may each count the other and leave
ready requests in the deleted queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from contextlib import suppress
from typing import TYPE_CHECKING, Any, Literal

import aiormq
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

from pigeon.message import Envelope, new_id
from pigeon.transports.rabbitmq import wire
from pigeon.transports.replies import NOT_A_SERVER, SERVER_LEFT, not_served

if TYPE_CHECKING:
    from pigeon.transports.rabbitmq.consumer import RabbitDelivery

log = logging.getLogger("pigeon")

BROKER_TIMEOUT = 5.0
"""Seconds each step of leaving waits for the broker's answer."""
SETTLING_TIMEOUT = 5.0
"""Seconds ``settled`` waits for the answers and hand-backs under way."""

Forward = Callable[[str, bytes, Basic.Properties, str | None], Awaitable[bool]]
"""Publish a request (subject, body, properties) through the rpc exchange, or the exchange
named last: whether a queue took it (``Requester.forward``)."""

Mode = Literal["answer", "requeue", "leave"]
"""``answer``: pass on to wildcard servers or reply "not served", and ack (no other server of
the queue); ``requeue``: nack, requeued (other servers run); ``leave``: unknown (the broker did
not answer), left unsettled, as before."""


class Leaving:
    """The requests of rpc server queue ``queue`` that its closing subscription did not start.

    Until ``mode`` is known, the subscription holds them (its backlog); then ``decide`` hands
    those back and ``hand_back`` each that comes later. ``forward`` passes a request on to the
    servers of wildcard subjects; one that came through the rpc exchange goes on to the rank
    ``onward`` (the next after the server's: ``ranks``), or is answered if there is none;
    ``lasting``: the queue may outlive its consumers.
    """

    def __init__(
        self,
        queue: str,
        make: Callable[[DeliveredMessage], RabbitDelivery],
        forward: Forward | None = None,
        *,
        onward: str | None = None,
        lasting: bool = False,
    ) -> None:
        self.queue = queue
        self.mode: Mode | None = None
        self.lasting = lasting
        self._make = make
        self._forward = forward
        self._onward = onward
        self._underlay: aiormq.abc.AbstractChannel | None = None
        self._sweeper = f"pigeon.sweep.{new_id()}"
        self._sweeping = False
        self._busy: set[asyncio.Task[Any]] = set()

    async def is_last(self, underlay: aiormq.abc.AbstractChannel) -> bool | None:
        """Whether the subscription is its queue's only consumer; ``None`` if the broker did
        not say."""
        try:
            ok = await asyncio.wait_for(
                underlay.queue_declare(self.queue, passive=True), BROKER_TIMEOUT
            )
        except Exception as exc:
            log.debug("pigeon: could not count the consumers of %r: %r", self.queue, exc)
            return None
        return (ok.consumer_count or 0) <= 1

    async def sweep(self, underlay: aiormq.abc.AbstractChannel) -> None:
        """Consume the queue without a prefetch limit (a new consumer's; the server's own keeps
        its own), passing on each request it gets (or answering it "not served")."""
        self._underlay = underlay
        try:
            await asyncio.wait_for(underlay.basic_qos(prefetch_count=0), BROKER_TIMEOUT)
            consuming = underlay.basic_consume(self.queue, self._swept, consumer_tag=self._sweeper)
            await asyncio.wait_for(consuming, BROKER_TIMEOUT)
            self._sweeping = True
        except Exception as exc:
            log.debug("pigeon: could not sweep %r: %r", self.queue, exc)

    async def stop_sweeping(self) -> None:
        """Cancel the sweeper, if it runs: an auto-delete queue goes with it (it was the last
        consumer)."""
        if self._sweeping and self._underlay is not None:
            self._sweeping = False
            with suppress(Exception):
                cancelling = self._underlay.basic_cancel(self._sweeper)
                await asyncio.wait_for(cancelling, BROKER_TIMEOUT)

    async def decide(self, mode: Mode, held: Iterable[RabbitDelivery]) -> None:
        """Settle on ``mode`` and hand back the deliveries ``held`` until now."""
        self.mode = mode
        for delivery in list(held):
            await self.hand_back(delivery)

    async def take(self, delivery: RabbitDelivery) -> None:
        """Hand back a delivery that reached the closing subscription (``mode`` is known)."""
        self._track()
        await self.hand_back(delivery)

    async def hand_back(self, delivery: RabbitDelivery) -> None:
        """Pass it on (or answer it "not served") and ack it, or requeue it, as ``mode`` says;
        one whose channel is gone is skipped (the broker took it back)."""
        if delivery.stale or self.mode == "leave":
            return
        if self.mode == "requeue":
            await delivery.requeue()
            return
        await self._pass_on(delivery)
        await delivery.ack()

    async def settled(self) -> None:
        """Wait (up to ``SETTLING_TIMEOUT`` seconds) for the answers and hand-backs under way,
        so that none is cut off by the channel's close."""
        if self._busy:
            await asyncio.wait(set(self._busy), timeout=SETTLING_TIMEOUT)

    async def _swept(self, message: DeliveredMessage) -> None:
        self._track()
        delivery = await made_or_rejected(self._make, message, self.queue)
        if delivery is None:
            return
        if delivery.envelope.reply_to:
            await self._pass_on(delivery)
        await delivery.ack()

    async def _pass_on(self, delivery: RabbitDelivery) -> None:
        """Send a request on through the rpc exchange, or one that came that way (it would come
        back here) through the ranks after this server's; if no queue takes it (or there is no
        rank after), answer it "not served"."""
        message = delivery._message
        onward = self._onward if message.exchange else None
        if self._forward is not None and (onward or not message.exchange):
            try:
                properties = message.header.properties
                forwarding = self._forward(delivery.subject, message.body, properties, onward)
                if await asyncio.wait_for(forwarding, BROKER_TIMEOUT):
                    return
            except Exception as exc:
                log.debug("pigeon: could not pass on a request of %r: %r", self.queue, exc)
        await refuse(message, delivery.envelope, delivery.subject, SERVER_LEFT)

    def _track(self) -> None:
        """Count the running consumer callback in ``settled``."""
        task = asyncio.current_task()
        if task is not None and not task.done():
            self._busy.add(task)
            task.add_done_callback(self._busy.discard)


async def refuse(
    message: DeliveredMessage, request: Envelope, subject: str, why: str = NOT_A_SERVER
) -> None:
    """Tell the caller of ``request`` nobody serves ``subject`` (``why``): it raises
    ``NoResponders``. The reply goes out on the channel the request came in on."""
    reply = not_served(request, subject, why)
    with suppress(Exception):
        await message.channel.basic_publish(
            reply.body,
            exchange="",
            routing_key=request.reply_to or "",
            properties=wire.properties(reply, delivery_mode=wire.TRANSIENT),
        )


async def made_or_rejected(
    make: Callable[[DeliveredMessage], RabbitDelivery], message: DeliveredMessage, queue: str
) -> RabbitDelivery | None:
    """``make(message)``, or ``None`` for a message pigeon cannot read: logged and rejected
    (``reject``)."""
    try:
        return make(message)
    except Exception:
        log.exception("pigeon: rejected a message of %r pigeon cannot read", queue)
        await reject(message)
        return None


async def reject(message: DeliveredMessage) -> None:
    """Reject without requeueing: a work queue dead-letters it through its DLX."""
    with suppress(Exception):
        if message.delivery_tag is not None and not message.channel.is_closed:
            await message.channel.basic_reject(message.delivery_tag, requeue=False, wait=False)
