"""``amqp://`` and ``amqps://``: the RabbitMQ transport, on aio-pika's robust connection.

How each pattern maps onto RabbitMQ (see ``docs/transports/rabbitmq.md``):

- events go to the topic exchange ``pigeon.events``; a plain subscriber consumes an exclusive
  auto-delete queue, a group a shared auto-delete queue ``<subject>:<group>``, a durable
  subscription the durable queue it names;
- requests go to the queue named after their subject, replies come back over direct reply-to;
- jobs live in durable work queues (quorum by default), with ``<queue>.dlq`` and
  ``<queue>.retry.<ms>`` beside them.

App options (``DEFAULTS``): ``queue_type`` (``"quorum"`` or ``"classic"``), ``exchange``,
``rpc_exchange``, ``dead_letter_exchange``, ``connect_timeout``, ``reconnect_patience``,
``max_message_size``, ``event_prefetch``. Any other option goes to ``aio_pika.connect_robust``
(``client_properties``, ``ssl_context``, ``reconnect_interval``, ...).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection, AbstractRobustQueue

from pigeon.errors import BrokerError, ConfigurationError, MessageTooLarge
from pigeon.message import Envelope, new_id
from pigeon.transports.base import Handler, QueueSettings
from pigeon.transports.rabbitmq import dead_letters, wire
from pigeon.transports.rabbitmq.consumer import RabbitSubscription, delivery_maker
from pigeon.transports.rabbitmq.errors import CLIENT_ERRORS, connect_error, translate, translated
from pigeon.transports.rabbitmq.jobs import Jobs
from pigeon.transports.rabbitmq.publisher import Publisher, underlay_of
from pigeon.transports.rabbitmq.requests import Requester
from pigeon.transports.rabbitmq.topology import Declarer, Topology, checked_name, queue_name_for
from pigeon.transports.urls import mask_url

log = logging.getLogger("pigeon")

DEFAULTS: dict[str, Any] = {
    "queue_type": "quorum",
    "exchange": "pigeon.events",
    "rpc_exchange": "pigeon.rpc",
    "dead_letter_exchange": "pigeon.dlx",
    "connect_timeout": 10.0,
    "reconnect_patience": 30.0,
    "max_message_size": 128 * 1024 * 1024,
    "event_prefetch": 32,
}
"""pigeon's own options of this transport, with their defaults."""

CLIENT_OPTIONS = frozenset(
    {p.name for p in aio_pika.RobustConnection.PARAMETERS}
    | {"client_properties", "ssl_context", "ssl_options"}
)

Declare = Callable[[AbstractRobustChannel], Awaitable[AbstractRobustQueue]]


class RabbitMQTransport:
    """RabbitMQ through aio-pika; see ``pigeon.transports.base.Transport`` for the contract.

    Publishes wait for publisher confirms; a connection that drops is reopened by aio-pika and
    every consumer (and the reply consumer) resumes; a publish under way waits up to
    ``reconnect_patience`` seconds for it. Every client error is raised as a ``pigeon.errors``
    exception naming the password-masked URL.
    """

    def __init__(self, url: str, settings: QueueSettings, options: dict[str, Any]) -> None:
        unknown = set(options) - set(DEFAULTS) - CLIENT_OPTIONS
        if unknown:
            raise ConfigurationError(
                f"unknown RabbitMQ options {sorted(unknown)}; pigeon's are {sorted(DEFAULTS)}, "
                f"aio-pika's {sorted(CLIENT_OPTIONS)}"
            )
        self.url = mask_url(url)
        self._raw_url = url
        self._options = {**DEFAULTS, **{k: v for k, v in options.items() if k in DEFAULTS}}
        self._client_options = {k: v for k, v in options.items() if k in CLIENT_OPTIONS}
        self._client_options.setdefault("reconnect_interval", 1)
        self._topology = Topology(
            queue_type=self._options["queue_type"],
            delivery_limit=settings.delivery_limit,
            events_exchange=self._options["exchange"],
            rpc_exchange=self._options["rpc_exchange"],
            dead_letter_exchange=self._options["dead_letter_exchange"],
        )
        self._max_size: int = self._options["max_message_size"]
        self._connection: AbstractRobustConnection | None = None
        self._subscriptions: list[RabbitSubscription] = []
        self._reply_channel: AbstractRobustChannel | None = None
        self._reply_underlay: aiormq.Channel | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        connection = self._connection
        return connection is not None and connection.connected.is_set()

    async def connect(self) -> None:
        if self._connection is not None:
            return
        try:
            connection = await aio_pika.connect_robust(
                self._raw_url, timeout=self._options["connect_timeout"], **self._client_options
            )
        except CLIENT_ERRORS as exc:
            raise connect_error(exc, self.url) from exc
        try:
            with translated(self.url, "opening a channel"):
                channel = connection.channel(publisher_confirms=True, on_return_raises=True)
                await channel.initialize()
        except BaseException:
            await connection.close()
            raise
        self._connection = connection
        self._declarer = Declarer(connection, self.url, self._topology)
        patience = self._options["reconnect_patience"]
        self._publisher = Publisher(channel, self.url, patience)
        self._jobs = Jobs(self._publisher, self._declarer, self.url)
        self._requester = Requester(connection, self._declarer, self.url)

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        for subscription in list(self._subscriptions):
            await subscription.close(0)
        self._subscriptions.clear()
        self._reply_channel = self._reply_underlay = None
        await self._requester.close()
        try:
            await asyncio.wait_for(connection.close(), 10)
        except Exception:
            log.debug("pigeon: closing %s failed", self.url, exc_info=True)

    # -- publish-subscribe ---------------------------------------------------------------------

    async def publish(self, subject: str, envelope: Envelope) -> None:
        self._check(envelope, subject)
        exchange = self._topology.events_exchange
        await self._declarer.exchange(exchange, "topic")
        properties = wire.properties(envelope)
        try:
            await self._publisher.publish(
                envelope.body, exchange=exchange, routing_key=subject, properties=properties
            )
        except CLIENT_ERRORS as exc:
            raise translate(exc, self.url, f"publishing on {subject!r}") from exc

    async def subscribe(
        self,
        subject: str,
        handler: Handler,
        *,
        group: str | None,
        durable: str | None,
        concurrency: int,
    ) -> RabbitSubscription:
        self._check()
        exchange = self._topology.events_exchange
        await self._declarer.exchange(exchange, "topic")
        if durable is not None:
            name = checked_name(durable, "durable subscription name")
            kind: dict[str, Any] = {
                "durable": True,
                "arguments": self._topology.durable_arguments(),
            }
        elif group is not None:
            name, kind = queue_name_for(f"{subject}:{group}"), {"auto_delete": True}
        else:
            name = queue_name_for(f"{subject}:sub.{new_id()}")
            kind = {"exclusive": True, "auto_delete": True}

        async def declare(channel: AbstractRobustChannel) -> AbstractRobustQueue:
            queue = await channel.declare_queue(name, **kind)
            await queue.bind(exchange, wire.binding_key(subject))
            return queue

        prefetch = max(concurrency, self._options["event_prefetch"])
        action = f"subscribing {subject!r}"
        return await self._consume(name, declare, handler, concurrency, action, prefetch=prefetch)

    # -- request-reply -------------------------------------------------------------------------

    async def serve(
        self, subject: str, handler: Handler, *, concurrency: int
    ) -> RabbitSubscription:
        self._check()
        name = queue_name_for(subject)
        exchange = self._topology.rpc_exchange
        routed = name != subject  # wildcards, or a subject no queue can be named after
        if routed:
            await self._declarer.exchange(exchange, "topic")

        async def declare(channel: AbstractRobustChannel) -> AbstractRobustQueue:
            queue = await channel.declare_queue(name, auto_delete=True)
            if routed:
                await queue.bind(exchange, wire.binding_key(subject))
            return queue

        return await self._consume(name, declare, handler, concurrency, f"serving {subject!r}")

    async def request(self, subject: str, envelope: Envelope, timeout: float) -> Envelope:
        self._check(envelope, subject)
        return await self._requester.request(subject, envelope, timeout)

    async def reply(self, reply_to: str, envelope: Envelope) -> None:
        self._check(envelope)
        properties = wire.properties(envelope, delivery_mode=wire.TRANSIENT)
        try:
            underlay = self._reply_underlay
            if underlay is None or underlay.is_closed:
                underlay = self._reply_underlay = await self._open_reply_channel()
            await underlay.basic_publish(
                envelope.body,
                exchange="",
                routing_key=reply_to,
                properties=properties,
                wait=False,  # no confirm for replies: a caller gone away is no error
            )
        except CLIENT_ERRORS as exc:
            raise translate(exc, self.url, "replying") from exc

    # -- work pool -----------------------------------------------------------------------------

    async def enqueue(self, queue: str, envelope: Envelope) -> None:
        self._check(envelope)
        await self._jobs.store(checked_name(queue, "work queue"), envelope)

    async def consume(
        self, queue: str, handler: Handler, *, concurrency: int
    ) -> RabbitSubscription:
        self._check()
        await self._declarer.work_queue(checked_name(queue, "work queue"))
        arguments = self._topology.work_queue_arguments(queue)

        async def declare(channel: AbstractRobustChannel) -> AbstractRobustQueue:
            return await channel.declare_queue(queue, durable=True, arguments=arguments)

        action = f"consuming {queue!r}"
        return await self._consume(queue, declare, handler, concurrency, action, jobs=True)

    async def dead_letters(self, queue: str, limit: int | None = None) -> list[Envelope]:
        self._check()
        return await dead_letters.peek(self._declarer, checked_name(queue, "work queue"), limit)

    async def replay_dead_letters(self, queue: str, limit: int | None = None) -> int:
        self._check()
        return await dead_letters.replay(self._declarer, checked_name(queue, "work queue"), limit)

    async def purge_dead_letters(self, queue: str) -> int:
        self._check()
        return await dead_letters.purge(self._declarer, checked_name(queue, "work queue"))

    # -- helpers -------------------------------------------------------------------------------

    async def _consume(
        self,
        name: str,
        declare: Declare,
        handler: Handler,
        concurrency: int,
        action: str,
        *,
        jobs: bool = False,
        prefetch: int = 0,
    ) -> RabbitSubscription:
        """Open a channel with prefetch = ``concurrency`` (or ``prefetch``), declare (robustly:
        again after a reconnect) the queue, and consume it."""
        assert self._connection is not None
        channel = self._connection.channel(publisher_confirms=False)
        try:
            with translated(self.url, action):
                await channel.initialize()
                await channel.set_qos(prefetch_count=prefetch or concurrency)
                queue = await declare(channel)
                make = delivery_maker(queue.name, self._jobs if jobs else None)
                subscription = RabbitSubscription(
                    channel, queue.name, handler, concurrency, make, self._jobs if jobs else None
                )
                await subscription.start()
        except BaseException:
            await _close_quietly(channel)
            raise
        self._subscriptions.append(subscription)
        return subscription

    async def _open_reply_channel(self) -> aiormq.Channel:
        """The live aiormq channel replies go out on (opened on first use), awaited while aio-pika
        reconnects for up to ``reconnect_patience`` seconds."""
        assert self._connection is not None
        async with asyncio.timeout(self._options["reconnect_patience"]):
            if self._reply_channel is None:
                channel = self._connection.channel(publisher_confirms=False)
                await channel.initialize()
                if self._reply_channel is None:
                    self._reply_channel = channel
                else:
                    await _close_quietly(channel)
            return await underlay_of(self._reply_channel)

    def _check(self, envelope: Envelope | None = None, subject: str = "") -> None:
        if self._connection is None:
            raise BrokerError(f"{self.url}: not connected; use 'async with app:' or 'app.run()'")
        if len(subject) > 63 and len(subject.encode()) > 255:
            raise ConfigurationError(f"subject {subject[:40]!r}... is over 255 bytes, AMQP's limit")
        if envelope is not None and len(envelope.body) > self._max_size:
            raise MessageTooLarge(
                f"message of {len(envelope.body)} bytes is over the {self._max_size} bytes "
                f"max_message_size of {self.url}"
            )


async def _close_quietly(channel: AbstractRobustChannel) -> None:
    try:
        if channel.is_initialized and not channel.is_closed:
            await asyncio.wait_for(channel.close(), 5)
    except Exception:
        log.debug("pigeon: closing a channel failed", exc_info=True)
