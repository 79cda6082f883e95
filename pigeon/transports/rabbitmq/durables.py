"""Durable subscriptions' queues on RabbitMQ: ``pigeon.durable.<name>:<subject>``, one per
durable name and subject, as a JetStream durable consumer is one per stream.

Earlier pigeon named the queue by the durable name alone, so one name on two subjects was one
queue bound to both, its consumers sharing the events of each, and a durable name equal to a work
queue's name met that queue. While a queue of the old naming exists, each start of the
subscription moves from it (``move_from_old_queue``): it stops receiving the subject's events,
and the events it stored for the subject go to the new queue. Its other subjects' events stay in
it for their own subscriptions to move; the old queue itself is left (AMQP cannot tell whether
other subjects are still bound to it): delete it once it is empty and its subscriptions all moved.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import TYPE_CHECKING, Any

import aiormq.abc
import aiormq.exceptions as amqp
from pamqp import commands as spec

from pigeon.errors import BrokerError
from pigeon.subjects import DURABLES
from pigeon.transports.rabbitmq import wire
from pigeon.transports.rabbitmq.topology import queue_name_for

if TYPE_CHECKING:
    from pigeon.transports.rabbitmq.transport import RabbitMQTransport

log = logging.getLogger("pigeon.rabbitmq")

CONFIRM_BATCH = 256
"""Moved events published before their confirms are awaited and their originals acked."""

MOVES_PER_PATIENCE = 100
"""Events a move may take per ``reconnect_patience`` (each a get, a publish and an ack)."""


def durable_queue(subject: str, durable: str) -> str:
    """The queue of the durable subscription ``durable`` of ``subject``:
    ``pigeon.durable.<durable>:<subject>``, with ``:`` in the durable name written ``%3A`` (a
    durable name holds no ``%``), so the name splits back at its first ``:`` after the prefix.
    Spelled by ``queue_name_for``: wildcards as ``+`` and ``#``; a name with ``%`` (a durable name
    with ``:``) or over 200 characters cleaned or cut, and given a hash of the whole."""
    return queue_name_for(f"{DURABLES}{durable.replace(':', '%3A')}:{subject}")


async def move_from_old_queue(
    transport: RabbitMQTransport, subject: str, durable: str, queue: str
) -> None:
    """Move the durable subscription ``durable`` of ``subject`` from the queue of the old naming
    (``durable`` itself), if it exists as pigeon declared it, to ``queue`` (declared and bound):
    unbind the old queue from ``subject``, then move the events it stored for ``subject`` (those
    that came through the events exchange with a matching routing key), each acked in the old
    queue once the broker confirmed its copy. The rest stays, in its order. Events published
    between the bind and the unbind reach both queues and may arrive twice (at least once)."""
    declarer = transport.declarer
    old_arguments = transport.topology.durable_arguments()

    async def stored(channel: aiormq.abc.AbstractChannel) -> int | None:
        """Events the old queue stores (``None``: no such queue, or not pigeon's durable one)."""
        old = await old_queue(channel, durable, old_arguments)
        return None if old is None else old.message_count or 0

    action = f"looking for durable subscription {durable!r}'s queue of the old naming"
    count = await declarer.run(action, stored, may_close=True)
    if count is None:
        return
    mover = _Mover(subject, transport.topology.events_exchange, durable, queue)
    action = f"moving durable subscription {durable!r} of {subject!r} to queue {queue!r}"
    await declarer.run(action, mover.move, confirms=True, parts=2 + count // MOVES_PER_PATIENCE)
    if mover.moved:
        log.warning(
            "pigeon: moved %d stored events of durable subscription %r of %r to queue %r",
            mover.moved,
            durable,
            subject,
            queue,
        )
    log.warning(
        "pigeon: queue %r, the old naming of durable subscription %r, still exists: delete it "
        'once no subject is bound to it and it is empty (docs/operating.md, "Upgrading durable '
        'subscriptions on RabbitMQ")',
        durable,
        durable,
    )


async def old_queue(
    channel: aiormq.abc.AbstractChannel, name: str, arguments: dict[str, Any] | None
) -> spec.Queue.DeclareOk | None:
    """The declaration of ``name`` if it is a durable subscription's queue of the old naming: it
    exists, is not another connection's exclusive queue and (``arguments`` given) was declared as
    pigeon declares durable queues, durable with those arguments (not a work queue, with its
    dead-letter arguments, nor a group's auto-delete queue); else ``None``, the channel closed."""
    try:
        found = await channel.queue_declare(name, passive=True)
        if arguments is not None:  # the same declaration again, or PRECONDITION_FAILED
            await channel.queue_declare(name, durable=True, arguments=arguments)
    except (amqp.ChannelNotFoundEntity, amqp.ChannelLockedResource, amqp.ChannelPreconditionFailed):
        return None
    return found


class _Mover:
    """Takes the stored events of one subject out of an old durable queue into its new one."""

    def __init__(self, subject: str, exchange: str, old: str, new: str) -> None:
        self.subject, self.exchange, self.old, self.new = subject, exchange, old, new
        self.moved = 0
        self.kept = False
        """Whether a message stays in the old queue (another subject's, or one not copied)."""

    async def move(self, channel: aiormq.abc.AbstractChannel) -> None:
        # the copies go through a fanout exchange of the new queue's name, bound to it alone,
        # so that they keep their routing key: the subject their handler is told
        await channel.exchange_declare(self.new, exchange_type="fanout", durable=True)
        await channel.queue_bind(self.new, self.new)
        await channel.queue_unbind(self.old, self.exchange, wire.binding_key(self.subject))
        pending: list[tuple[int, asyncio.Future[object]]] = []
        try:
            await self._take(channel, pending)
            await self._settle(channel, pending)
        finally:
            for _, confirm in pending:  # a move cut short: its copies are made again next time
                confirm.cancel()
            await asyncio.gather(*(confirm for _, confirm in pending), return_exceptions=True)
        if self.kept:  # every one held, back in its place for its own subject's subscription
            await channel.basic_nack(0, multiple=True, requeue=True)
        await channel.exchange_delete(self.new)

    async def _take(
        self, channel: aiormq.abc.AbstractChannel, pending: list[tuple[int, asyncio.Future[object]]]
    ) -> None:
        """Get every message waiting in the old queue once, copy the subject's own; hold the
        others (unacked)."""
        waiting = (await channel.queue_declare(self.old, passive=True)).message_count or 0
        for _ in range(waiting):
            message = await channel.basic_get(self.old)
            delivery = message.delivery
            if not isinstance(delivery, spec.Basic.GetOk):
                break
            if not self._ours(delivery):
                self.kept = True
                continue
            confirm = channel.basic_publish(
                message.body,
                exchange=self.new,
                routing_key=delivery.routing_key or "",
                properties=_copied(message.header.properties),
            )
            pending.append((delivery.delivery_tag or 0, asyncio.ensure_future(confirm)))
            if len(pending) >= CONFIRM_BATCH:
                await self._settle(channel, pending)

    def _ours(self, delivery: spec.Basic.GetOk) -> bool:
        """Whether the old queue got ``delivery`` through its binding to the subject: ``>``
        bound as ``#`` also took the subject's prefix itself (``orders.>``: ``orders``)."""
        if delivery.exchange != self.exchange:
            return False
        return wire.bound(self.subject, delivery.routing_key or "")

    async def _settle(
        self, channel: aiormq.abc.AbstractChannel, pending: list[tuple[int, asyncio.Future[object]]]
    ) -> None:
        """Ack each moved original once the broker confirmed its copy."""
        for tag, confirm in pending:
            try:
                confirmed = await confirm
            except (TypeError, ValueError) as exc:  # properties pamqp cannot write back
                log.warning(
                    "pigeon: an event of %r stays in queue %r: %s", self.subject, self.old, exc
                )
                self.kept = True
                continue
            if not isinstance(confirmed, spec.Basic.Ack):
                raise BrokerError(
                    f"the broker refused a moved copy of an event into queue {self.new!r}; the "
                    f"event stays in queue {self.old!r} (the move goes on at the next start)"
                )
            await channel.basic_ack(tag)
            self.moved += 1
        pending.clear()


def _copied(properties: spec.Basic.Properties) -> spec.Basic.Properties:
    """The properties of a moved copy: the original's, without its old queue's delivery count
    (each scan that put it back added one: its subscription would count them as attempts) and
    without ``user_id`` (the broker refuses another user's id from this connection); a header
    text that is not UTF-8 (which pamqp reads as ``bytes`` and cannot write back) as the text
    its handler would have been given."""
    copied = copy.copy(properties)
    copied.user_id = None
    headers = copied.headers or {}
    copied.headers = {
        name: _writable(value) for name, value in headers.items() if name != wire.BROKER_COUNT
    }
    return copied


def _writable(value: Any) -> Any:
    """``value`` as pamqp can write it back: ``bytes`` (a long string that is not UTF-8) as the
    text pigeon reads from it (``wire``), in nested tables and arrays too."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {name: _writable(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_writable(item) for item in value]
    return value
