"""Requests over direct reply-to: one reply consumer per transport, replies found by correlation id.

A request is published ``mandatory`` to the default exchange with the subject as routing key (the
queue of its servers is named after the subject, as in RabbitMQ's RPC tutorial); returned, it is
tried once more through the ``pigeon.rpc`` topic exchange, which hands it to the most specific
server of a wildcard subject (``ranks``), and returned again it is ``NoResponders``. A subject
no queue is named after as it is (``queue_name_for``: a literal ``+`` or ``#``, characters a
queue name cannot hold) goes the other way round: its exact servers are bound by rank too, and
the queue named like it may be a wildcard server's (``orders.+`` is ``orders.*``'s). Its deadline
is the message's ``expiration`` (cut to the 49.7 days RabbitMQ takes), so the broker drops a
request nobody took in time.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import aiormq
import aiormq.exceptions as amqp
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection, AbstractRobustQueue
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

from pigeon.errors import BrokerError, ConfigurationError, NoResponders, RequestTimeout
from pigeon.message import Envelope
from pigeon.transports.base import Handler
from pigeon.transports.rabbitmq import ranks, wire
from pigeon.transports.rabbitmq.consumer import RabbitSubscription
from pigeon.transports.rabbitmq.errors import CLIENT_ERRORS, translate, translated
from pigeon.transports.rabbitmq.publisher import close_quietly, underlay_of
from pigeon.transports.rabbitmq.topology import Declarer, queue_name_for
from pigeon.transports.replies import ReplyMap, served

if TYPE_CHECKING:
    from pigeon.transports.rabbitmq.transport import RabbitMQTransport

log = logging.getLogger("pigeon")

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
FORWARD_TIMEOUT = 5.0
"""Seconds ``Requester.forward`` waits for the channel requests go out on."""


class Requester:
    """Sends requests and waits for their replies; concurrent requests never wait for each other.

    The reply consumer (no-ack, as direct reply-to requires) lives on the channel requests are
    published on. When that channel is lost, requests in flight fail with ``BrokerError`` (their
    replies would go to the old channel's address); the consumer comes back with the channel.
    """

    def __init__(self, connection: AbstractRobustConnection, declarer: Declarer, url: str):
        self._connection = connection
        self._declarer = declarer
        self._url = url
        self._replies = ReplyMap()
        self._closing = False
        self._channel: AbstractRobustChannel | None = None
        self._underlay: aiormq.Channel | None = None
        """The channel the reply consumer runs on: requests go out there, and only there."""
        self._consuming = asyncio.Event()
        self._lock = asyncio.Lock()

    async def request(self, subject: str, envelope: Envelope, timeout: float) -> Envelope:
        correlation_id = envelope.correlation
        properties = wire.properties(
            envelope,
            delivery_mode=wire.TRANSIENT,
            reply_to=DIRECT_REPLY_TO,
            expiration=wire.expiration(timeout),
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._replies.expect(correlation_id)
        try:
            underlay = self._underlay
            if underlay is None or underlay.is_closed:
                underlay = await self._wait_underlay(subject, timeout)
            await self._send(underlay, subject, envelope.body, properties)
        except BaseException as exc:
            self._replies.forget(correlation_id)
            if self._closing and not _cancelled_by_caller(exc):
                # aiormq cancels (or fails) what waits on a channel the close took away
                raise BrokerError(f"{self._url}: connection closed") from None
            raise
        reply = await self._replies.wait(correlation_id, subject, deadline - loop.time(), timeout)
        return served(reply, subject, self._url)  # a work queue of that name may have answered

    def fail_all(self, error: BaseException) -> None:
        self._replies.fail_all(error)

    async def close(self) -> None:
        self._closing = True
        self._replies.fail_all(BrokerError(f"{self._url}: connection closed"))
        channel, self._channel, self._underlay = self._channel, None, None
        if channel is not None:
            try:
                await asyncio.wait_for(channel.close(), 5)
            except Exception:
                log.debug("pigeon: closing the reply channel failed", exc_info=True)

    async def _wait_underlay(self, subject: str, timeout: float) -> aiormq.Channel:
        """The live aiormq channel that consumes replies: opened on first use, awaited while
        aio-pika reconnects (``RequestTimeout`` if not back within ``timeout``)."""
        try:
            async with asyncio.timeout(timeout):  # outside: ``translated`` must not see it
                with translated(self._url, f"requesting {subject!r}"):
                    if self._channel is None:
                        await self._open()
                    while self._underlay is None or self._underlay.is_closed:
                        self._consuming.clear()
                        await self._consuming.wait()
                    return self._underlay
        except TimeoutError:
            raise RequestTimeout.for_subject(subject, timeout) from None

    async def _send(
        self,
        underlay: aiormq.Channel,
        subject: str,
        body: bytes,
        properties: Basic.Properties,
    ) -> None:
        if queue_name_for(subject) == subject:
            if not await self._send_direct(underlay, subject, body, properties):
                await self._send_to_wildcards(underlay, subject, body, properties)
            return
        # its servers are bound by rank, exact ones too; the queue named like it is a wildcard
        # server's (orders.+ is orders.*'s), or an exact server's of an older pigeon
        try:
            await self._send_to_wildcards(underlay, subject, body, properties)
        except NoResponders:
            if not await self._send_direct(underlay, subject, body, properties):
                raise

    async def _send_direct(
        self,
        underlay: aiormq.Channel,
        subject: str,
        body: bytes,
        properties: Basic.Properties,
    ) -> bool:
        """Publish to the queue named ``subject``; ``False`` if the broker returned it."""
        try:
            await _publish(underlay, "", subject, body, properties)
        except amqp.PublishError:
            return False
        except CLIENT_ERRORS as exc:
            raise translate(exc, self._url, f"requesting {subject!r}") from exc
        return True

    async def _send_to_wildcards(
        self,
        underlay: aiormq.Channel,
        subject: str,
        body: bytes,
        properties: Basic.Properties,
    ) -> None:
        exchange = await self._rpc_exchange()
        if exchange is None:  # no exchange, no server
            raise NoResponders.for_subject(subject, self._url)
        try:
            await _publish(underlay, exchange, subject, body, properties)
        except CLIENT_ERRORS as exc:
            if not isinstance(exc, amqp.PublishError):
                raise translate(exc, self._url, f"requesting {subject!r}") from exc
            raise NoResponders.for_subject(subject, self._url) from None

    async def _rpc_exchange(self) -> str | None:
        """The rpc exchange of wildcard servers, declared if need be; ``None`` when ``passive``
        and it does not exist. Raises ``ConfigurationError`` for one declared otherwise."""
        exchange = self._declarer.topology.rpc_exchange
        try:
            await self._declarer.exchange(exchange, "topic")
        except ConfigurationError:
            if not self._declarer.topology.passive:
                raise
            return None
        return exchange

    async def forward(
        self, subject: str, body: bytes, properties: Basic.Properties, exchange: str | None
    ) -> bool:
        """Publish a request a closing server did not start through the rpc exchange (or
        ``exchange``, a rank of it: ``ranks``), to the servers of wildcard subjects
        (``mandatory``, confirmed, on the channel requests go out on, opened if need be):
        ``True`` if a queue took it, ``False`` if it was returned or there is no rpc exchange
        (``passive``). Broker errors are raised."""
        exchange = exchange or await self._rpc_exchange()
        if exchange is None:
            return False
        underlay = self._underlay
        if underlay is None or underlay.is_closed:
            underlay = await self._wait_underlay(subject, FORWARD_TIMEOUT)
        try:
            await _publish(underlay, exchange, subject, body, properties)
        except amqp.PublishError:
            return False
        return True

    async def _open(self) -> AbstractRobustChannel:
        async with self._lock:
            if self._channel is None:
                channel = self._connection.channel(publisher_confirms=True, on_return_raises=True)
                await channel.initialize()
                await self._consume(channel)
                channel.close_callbacks.add(self._lost)
                channel.reopen_callbacks.add(self._reopened)
                self._channel = channel
            return self._channel

    async def _consume(self, channel: AbstractRobustChannel | None) -> None:
        assert channel is not None
        underlay = await underlay_of(channel)
        await underlay.basic_consume(DIRECT_REPLY_TO, self._on_reply, no_ack=True)
        self._underlay = underlay
        self._consuming.set()

    async def _on_reply(self, message: DeliveredMessage) -> None:
        if not self._replies.resolve(wire.envelope_of(message)):
            log.debug("pigeon: dropped a late reply %s", message.header.properties.correlation_id)

    def _lost(self, *_: Any) -> None:
        self._underlay = None
        self._replies.fail_all(
            BrokerError(f"{self._url}: connection lost while waiting for a reply; try again")
        )

    async def _reopened(self, channel: AbstractRobustChannel | None) -> None:
        try:
            await self._consume(channel or self._channel)
        except Exception:
            log.exception("pigeon: could not consume replies again after reconnecting")


async def _publish(
    underlay: aiormq.Channel,
    exchange: str,
    subject: str,
    body: bytes,
    properties: Basic.Properties,
) -> None:
    await underlay.basic_publish(
        body,
        exchange=exchange,
        routing_key=subject,
        properties=properties,
        mandatory=True,
        wait=False,  # the confirm (or the return) follows
    )


class RabbitRequests:
    """``Requests`` of a ``RabbitMQTransport``: servers consume the queue named after their
    subject; replies go out on a channel of their own, without confirms."""

    def __init__(self, transport: RabbitMQTransport) -> None:
        self._transport = transport
        self._reply_channel: AbstractRobustChannel | None = None
        self._reply_underlay: aiormq.Channel | None = None

    async def serve(
        self, subject: str, handler: Handler, *, concurrency: int
    ) -> RabbitSubscription:
        transport = self._transport
        transport.check(subject=subject)
        name = queue_name_for(subject)
        exchange = transport.topology.rpc_exchange
        routed = name != subject  # wildcards, or a subject no queue can be named after
        passive = transport.topology.passive
        if passive:  # the queue's owner declared it (and bound it, for wildcards)
            advice = "declare it (as the RPC tutorial's server does) before serving it"
            if routed:  # requests come through the rank exchange of its specificity
                rank = ranks.exchange_for(exchange, subject)
                key = wire.binding_key(subject)
                advice = f"declare it and bind it to exchange {rank!r} with {key!r}"
            await transport.declarer.expect("queue", name, advice)
        elif routed:
            await ranks.declare(transport.declarer)

        async def declare(channel: AbstractRobustChannel) -> AbstractRobustQueue:
            if passive:
                return await channel.declare_queue(name, passive=True)
            queue = await channel.declare_queue(name, auto_delete=True)
            if routed:  # to the most specific rank only (see ``ranks``)
                await ranks.declare_on(channel, exchange)  # declared again with the channel
                key = wire.binding_key(subject)
                await queue.bind(ranks.exchange_for(exchange, subject), key)
                await queue.unbind(exchange, key)  # an older pigeon's server bound it there
            return queue

        action = f"serving {subject!r}"
        onward = ranks.onward(exchange, subject) if routed and not passive else None
        serves = subject if routed else None  # a request to the queue's name is another subject's
        return await transport.consume(
            name, declare, handler, concurrency, action, requests=True, onward=onward, serves=serves
        )

    async def request(self, subject: str, envelope: Envelope, timeout: float) -> Envelope:
        self._transport.check(envelope, subject)
        return await self._transport.requester.request(subject, envelope, timeout)

    async def reply(self, reply_to: str, envelope: Envelope) -> None:
        transport = self._transport
        transport.check(envelope)
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
            raise translate(exc, transport.url, "replying") from exc

    def forget_reply_channel(self) -> None:
        """The connection closed: open a new reply channel on next use."""
        self._reply_channel = self._reply_underlay = None

    async def _open_reply_channel(self) -> aiormq.Channel:
        """The live aiormq channel replies go out on (opened on first use), awaited while aio-pika
        reconnects for up to ``reconnect_patience`` seconds."""
        connection = self._transport.connection
        async with asyncio.timeout(self._transport.options["reconnect_patience"]):
            if self._reply_channel is None:
                channel = connection.channel(publisher_confirms=False)
                await channel.initialize()
                if self._reply_channel is None:
                    self._reply_channel = channel
                else:
                    await close_quietly(channel)
            return await underlay_of(self._reply_channel)


def _cancelled_by_caller(exc: BaseException) -> bool:
    task = asyncio.current_task()
    return isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling() > 0
