"""Publish-subscribe on RabbitMQ: the topic exchange ``pigeon.events`` (``App(exchange=...)``).

A plain subscriber consumes an exclusive auto-delete queue, a group a shared auto-delete queue
``<subject>:<group>`` (``group_queue``), a durable subscription its queue of that name and
subject (``durables``), moved from a queue of the old naming at each start while one exists. With
``App(passive=True)`` only a plain subscriber's own exclusive queue (and its binding) is declared:
the exchange, group and durable queues must exist, and are used as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiormq.abc
from aio_pika import ExchangeType
from aio_pika.abc import AbstractRobustChannel, AbstractRobustQueue

from pigeon.message import Envelope, new_id
from pigeon.transports.base import Backlog, Handler
from pigeon.transports.rabbitmq import backlog, durables, restored, wire
from pigeon.transports.rabbitmq.consumer import RabbitSubscription
from pigeon.transports.rabbitmq.errors import CLIENT_ERRORS, translate
from pigeon.transports.rabbitmq.topology import checked_name, queue_name_for
from pigeon.transports.sends import READ

if TYPE_CHECKING:
    from pigeon.transports.rabbitmq.transport import RabbitMQTransport


GROUP_SEPARATOR = ":"
"""Between the subject and the group name in a group's queue name."""


def group_queue(subject: str, group: str) -> str:
    """The shared queue of pigeon's group ``group`` on ``subject``: ``<subject>:<group>`` with
    ``%`` and ``:`` of ``group`` written ``%25`` and ``%3A`` (as NATS's queue groups), spelled
    by ``queue_name_for``. The name splits back at its last ``:``, so two subject and group
    pairs never share a queue (``a:b`` + ``c`` and ``a`` + ``b:c`` took each other's events);
    a group without ``%`` or ``:`` keeps the name it always had."""
    escaped = group.replace("%", "%25").replace(GROUP_SEPARATOR, "%3A")
    return queue_name_for(f"{subject}{GROUP_SEPARATOR}{escaped}")


class RabbitEvents:
    """``Events`` of a ``RabbitMQTransport``; publishes wait for the publisher confirm."""

    def __init__(self, transport: RabbitMQTransport) -> None:
        self._transport = transport

    async def publish(self, subject: str, envelope: Envelope) -> None:
        transport = self._transport
        transport.check(envelope, subject)
        exchange = transport.topology.events_exchange
        action = f"publishing on {subject!r}"
        with transport.sends(action):
            if not transport.declarer.has_exchange(exchange):  # no coroutine once declared
                await transport.declarer.exchange(exchange, "topic")
            properties = wire.properties(envelope)
            try:
                await transport.publisher.publish(
                    envelope.body, exchange=exchange, routing_key=subject, properties=properties
                )
            except CLIENT_ERRORS as exc:
                raise translate(exc, transport.url, action) from exc

    async def subscribe(
        self,
        subject: str,
        handler: Handler,
        *,
        group: str | None,
        durable: str | None,
        concurrency: int,
        max_pending: int | None = None,
    ) -> RabbitSubscription:
        transport = self._transport
        transport.check(subject=subject)
        exchange = transport.topology.events_exchange
        await transport.declarer.exchange(exchange, "topic")
        name, kind = self._queue_for(subject, group, durable)
        adopt = transport.topology.passive and not kind.get("exclusive")
        if adopt:  # a shared queue: its owner declared and bound it
            name = await self._adopted(name, subject, durable)

        async def declare(channel: AbstractRobustChannel) -> AbstractRobustQueue:
            if adopt:
                return await channel.declare_queue(name, passive=True)
            queue = await channel.declare_queue(name, **kind)
            if not transport.topology.passive:  # declared again with the channel, then bound
                await restored.exchange(channel, exchange, ExchangeType.TOPIC)
            await queue.bind(exchange, wire.binding_key(subject))
            return queue

        if durable is not None and not adopt:
            await self._move_durable(subject, durable, name, kind)

        prefetch = max_pending or max(concurrency, transport.options["event_prefetch"])
        action = f"subscribing {subject!r}"
        lost = None
        if kind.get("exclusive"):  # deleted at close, with what it holds

            def lost(held: int) -> None:
                why = "its exclusive queue is deleted with it; use durable= to keep them"
                transport.slow_consumers.dropped_at_close(subject, held, why)

        return await transport.consume(
            name, declare, handler, concurrency, action, prefetch=prefetch, held_at_close=lost
        )

    async def backlog(self, subject: str, durable: str) -> Backlog:
        transport = self._transport
        transport.check()
        name = checked_name(durable, "durable subscription name")
        with transport.sends(f"reading the backlog of durable subscription {name!r}", READ):
            return await backlog.read_durable(transport.declarer, transport.url, subject, name)

    async def _adopted(self, name: str, subject: str, durable: str | None) -> str:
        """The queue an ``App(passive=True)`` subscription uses: ``name``, which its owner
        declared and bound; for a durable subscription, else one of the old naming (the
        durable name alone) as such Apps used before."""
        transport = self._transport
        exchange = transport.topology.events_exchange
        advice = f"declare it and bind it to {exchange!r} with {wire.binding_key(subject)!r}"
        declarer = transport.declarer
        new_missing = durable is not None and not await declarer.exists(name)
        if new_missing and durable is not None and await declarer.exists(durable):
            return durable  # a queue of the old naming (durables), as such Apps used before
        await declarer.expect("queue", name, advice)
        return name

    async def _move_durable(
        self, subject: str, durable: str, name: str, kind: dict[str, Any]
    ) -> None:
        """Declare and bind the durable subscription's queue, then move it from the queue of
        the old naming if there is one (``durables``)."""
        transport = self._transport
        exchange = transport.topology.events_exchange

        async def declare(channel: aiormq.abc.AbstractChannel) -> None:
            await channel.queue_declare(name, durable=True, arguments=kind["arguments"])
            await channel.queue_bind(name, exchange, routing_key=wire.binding_key(subject))

        await transport.declarer.run(f"declaring durable subscription {durable!r}", declare)
        await durables.move_from_old_queue(transport, subject, durable, name)

    def _queue_for(
        self, subject: str, group: str | None, durable: str | None
    ) -> tuple[str, dict[str, Any]]:
        """The name of a subscription's queue and how to declare it."""
        if durable is not None:
            checked_name(durable, "durable subscription name")
            arguments = self._transport.topology.durable_arguments()
            return durables.durable_queue(subject, durable), {
                "durable": True,
                "arguments": arguments,
            }
        if group is not None:
            return group_queue(subject, group), {"auto_delete": True}
        name = queue_name_for(f"{subject}:sub.{new_id()}")
        return name, {"exclusive": True, "auto_delete": True}
