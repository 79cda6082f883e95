"""``amqp://`` and ``amqps://``: the RabbitMQ transport, on aio-pika's robust connection.

A URL may name the nodes of a cluster (``amqp://u:p@h1:5672,h2:5672,h3:5672/vhost``): the App
connects to any live one (from a random one, unless ``dont_randomize=True``) and fails over to
the next when its node goes away (``failover.py``).

How each pattern maps onto RabbitMQ (see ``docs/transports/rabbitmq.md``):

- events go to the topic exchange ``pigeon.events``; a plain subscriber consumes an exclusive
  auto-delete queue, a group a shared auto-delete queue ``<subject>:<group>``, a durable
  subscription ``pigeon.durable.<durable>:<subject>`` (``durables``);
- requests go to the queue named after their subject, replies come back over direct reply-to;
- jobs live in durable work queues (quorum by default), with ``<queue>.dlq`` beside them;
  delays go through the delay ladder ``pigeon.delay.<queue_type>.NN`` shared by every queue.

App options (``DEFAULTS``): ``queue_type`` (``"quorum"`` or ``"classic"``), ``exchange``,
``rpc_exchange``, ``dead_letter_exchange``, ``connect_timeout``, ``reconnect_patience``,
``max_message_size``, ``event_prefetch``, ``dont_randomize``. Any other option goes to
``aio_pika.connect_robust`` (``client_properties``, ``ssl_context``, ``reconnect_interval``, ...).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection, AbstractRobustQueue

from pigeon.errors import BrokerError
from pigeon.message import Envelope
from pigeon.subjects import check_length
from pigeon.transports.addresses import servers_of
from pigeon.transports.base import Handler, QueueSettings, Transport
from pigeon.transports.checks import seconds, unknown_options, whole_number
from pigeon.transports.limits import MAX_HEADER_BYTES, check_body, check_headers
from pigeon.transports.rabbitmq.consumer import MakeDelivery, RabbitSubscription, delivery_maker
from pigeon.transports.rabbitmq.errors import answered_within, connect_error, translated
from pigeon.transports.rabbitmq.events import RabbitEvents
from pigeon.transports.rabbitmq.failover import (
    FailoverConnection,
    failover_class,
    hosts_of,
    with_heartbeat,
)
from pigeon.transports.rabbitmq.frames import install as guard_frame_decoding
from pigeon.transports.rabbitmq.jobs import JobStore, RabbitJobs
from pigeon.transports.rabbitmq.leaving import Leaving
from pigeon.transports.rabbitmq.publisher import Publisher, close_quietly, underlay_of
from pigeon.transports.rabbitmq.requests import RabbitRequests, Requester
from pigeon.transports.rabbitmq.topology import CLOSE_PATIENCE, Declarer, Topology, checked_name
from pigeon.transports.sends import Sends
from pigeon.transports.slow import SlowConsumers
from pigeon.transports.urls import mask_url

log = logging.getLogger("pigeon")


def _not_a_failed_connect(record: logging.LogRecord) -> bool:
    """aiormq logs each connection it fails to open at ERROR; pigeon says the same once, in
    its own error (URL masked) or its reconnect warnings, so that line is dropped."""
    return not str(record.msg).startswith("error when creating transport")


logging.getLogger("aiormq.connection").addFilter(_not_a_failed_connect)

guard_frame_decoding()  # one foreign message's odd timestamp must not kill the connection

DEFAULTS: dict[str, Any] = {
    "queue_type": "quorum",
    "exchange": "pigeon.events",
    "rpc_exchange": "pigeon.rpc",
    "dead_letter_exchange": "pigeon.dlx",
    "connect_timeout": 10.0,
    "reconnect_patience": 10.0,
    "max_message_size": 128 * 1024 * 1024,
    "event_prefetch": 32,
    "dont_randomize": False,
}
"""pigeon's own options of this transport, with their defaults."""

DEFAULT_FRAME_MAX = 131072
"""RabbitMQ's default ``frame_max``: the largest frame, and so the largest header table."""

PROPERTIES_RESERVE = 1200
"""Bytes of a content header frame taken by everything but the header table: frame overhead,
content type, message id, correlation id, reply-to (short strings), delivery mode, timestamp."""

MAX_KEY_BYTES = 255
"""The longest routing or binding key: an AMQP short string."""

MAX_PREFETCH = 65_535
"""The largest ``basic.qos`` prefetch count (a short); a consumer asking more gets this."""

CONSUME_RETRIES = 3
"""Times an rpc server consumes its queue again, declared anew, when it went just after its
declare (see ``_start``)."""

REOPEN_TIMEOUT = 5.0
"""Seconds ``_start`` waits for aio-pika to reopen the channel and declare the queue again."""

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
        error = unknown_options("RabbitMQ", options, DEFAULTS, CLIENT_OPTIONS, "aio-pika's")
        if error is not None:
            raise error
        self.url = mask_url(url)
        checked = servers_of(url)
        self._servers = [server.url for server in checked]
        self._hosts = hosts_of(checked)
        self.options = {**DEFAULTS, **{k: v for k, v in options.items() if k in DEFAULTS}}
        _check_numbers(self.options)
        self._client_options = {k: v for k, v in options.items() if k in CLIENT_OPTIONS}
        self._client_options.setdefault("reconnect_interval", 1)
        self.topology = Topology(
            queue_type=self.options["queue_type"],
            delivery_limit=settings.delivery_limit,
            events_exchange=self.options["exchange"],
            rpc_exchange=self.options["rpc_exchange"],
            dead_letter_exchange=self.options["dead_letter_exchange"],
            passive=settings.passive,
        )
        self._max_size: int = self.options["max_message_size"]
        self.slow_consumers = SlowConsumers(self.url)
        self._connection: AbstractRobustConnection | None = None
        self._restored = False
        self._subscriptions: list[RabbitSubscription] = []
        self.events = RabbitEvents(self)
        self.requests = RabbitRequests(self)
        self.jobs = RabbitJobs(self)

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def connection(self) -> AbstractRobustConnection:
        """The open connection; ``BrokerError`` when not connected."""
        if self._connection is None:
            raise BrokerError.not_connected(self.url)
        return self._connection

    @property
    def dropped_events(self) -> Mapping[str, int]:
        """Events lost since the start, by subscription subject: those a plain subscription
        held unstarted when it closed (its exclusive queue goes with it). The broker keeps
        the rest: none is dropped for being slow."""
        return self.slow_consumers.dropped

    @property
    def connected(self) -> bool:
        """Connected, and done restoring every channel after a reconnect: aio-pika sets its
        ``connected`` before it declares the queues and consumes again (readiness waits)."""
        connection = self._connection
        return connection is not None and connection.connected.is_set() and self._restored

    async def connect(self) -> None:
        if self._connection is not None:
            return
        connection, channel = await self._open()
        self._connection, self._restored = connection, True
        connection.close_callbacks.add(lambda *_: setattr(self, "_restored", False))
        connection.reconnect_callbacks.add(lambda *_: setattr(self, "_restored", True))
        patience = self.options["reconnect_patience"]
        self.declarer = Declarer(connection, self.url, self.topology, patience)
        self.publisher = Publisher(
            channel, self.url, patience, renew=lambda: _publishing_channel(connection)
        )
        self.job_store = JobStore(self.publisher, self.declarer, self.url)
        self.requester = Requester(connection, self.declarer, self.url)
        self.sends = Sends(self.url)

    async def _open(self) -> tuple[AbstractRobustConnection, AbstractRobustChannel]:
        """A robust connection, with its publishing channel open, to the first server that
        answers, in turn from a random one (from the first with ``dont_randomize=True``); it
        fails over to the next on a loss."""
        hosts = self._hosts
        start = 0 if self.options["dont_randomize"] else random.randrange(len(hosts))
        failure: tuple[BaseException, str] | None = None
        for offset in range(len(hosts)):
            index = (start + offset) % len(hosts)
            try:
                return await self._open_at(index, hosts)
            except Exception as exc:  # also what aio-pika raises reading a server that is no AMQP
                failure = exc, self._servers[index]
                log.debug("pigeon: cannot connect to %s: %r", mask_url(failure[1]), exc)
        assert failure is not None
        timeout = self.options["connect_timeout"]
        raise connect_error(failure[0], self.url, mask_url(failure[1]), timeout) from failure[0]

    async def _open_at(
        self, index: int, hosts: list[tuple[str, int]]
    ) -> tuple[AbstractRobustConnection, AbstractRobustChannel]:
        """The connection to server ``index`` and its publishing channel, each within
        ``connect_timeout``; the connection is closed if the channel does not open."""
        timeout = self.options["connect_timeout"]
        server = self._servers[index]
        connection: AbstractRobustConnection = await aio_pika.connect_robust(
            server,
            timeout=timeout,
            connection_class=failover_class(hosts, index),
            **with_heartbeat(server, self._client_options),
        )
        try:
            async with asyncio.timeout(timeout):
                return connection, await _publishing_channel(connection)
        except BaseException:
            await _close_within(connection, CLOSE_PATIENCE)
            raise

    @property
    def server(self) -> str:
        """``host:port`` of the node the connection is on (or tries next), for logs."""
        connection = self._connection
        return connection.server if isinstance(connection, FailoverConnection) else self.url

    async def close(self) -> None:
        """Let the sends under way get their confirms (up to ``reconnect_patience`` seconds,
        while connected), fail the rest with ``BrokerError`` (see ``sends``), then close every
        subscription, fail the requests waiting and disconnect. Idempotent; never raises."""
        connection = self._connection
        if connection is None or self.sends.closing:
            return
        connected = connection.connected.is_set()
        await self.sends.settle(self.options["reconnect_patience"] if connected else 0)
        self._connection = None
        for subscription in list(self._subscriptions):
            await subscription.close(0)
        self._subscriptions.clear()
        self.requests.forget_reply_channel()
        await self.requester.close()
        try:
            await asyncio.wait_for(connection.close(), 10)
        except Exception:
            log.debug("pigeon: closing %s failed", self.url, exc_info=True)

    # -- what the roles share -----------------------------------------------------------------

    async def consume(
        self,
        name: str,
        declare: Declare,
        handler: Handler,
        concurrency: int,
        action: str,
        *,
        jobs: bool = False,
        requests: bool = False,
        serves: str | None = None,
        onward: str | None = None,
        prefetch: int = 0,
        held_at_close: Callable[[int], None] | None = None,
    ) -> RabbitSubscription:
        """Open a channel with prefetch = ``concurrency`` (or ``prefetch``), declare (robustly:
        again after a reconnect) the queue, and consume it (``requests``: an rpc server's
        queue, the only kind that takes requests, whose leaving passes on those that came
        through the rpc exchange to the rank ``onward``; ``serves``: its subject, if the queue
        is not named so, the only subject it answers; ``held_at_close``: told how many
        deliveries it held unstarted at close, if its queue goes with it)."""
        assert self._connection is not None
        channel = self._connection.channel(publisher_confirms=False)
        patience = self.options["reconnect_patience"]
        try:
            async with answered_within(patience, self.url, action):
                with translated(self.url, action):
                    await channel.initialize()
                    prefetch = min(prefetch or concurrency, MAX_PREFETCH)
                    await channel.set_qos(prefetch_count=prefetch)
                    queue = await declare(channel)
                    store = self.job_store if jobs else None
                    make = delivery_maker(queue.name, store)
                    leaving = self._leaving(queue.name, make, onward) if requests else None
                    subscription = RabbitSubscription(
                        channel,
                        queue.name,
                        handler,
                        concurrency,
                        make,
                        store,
                        leaving=leaving,
                        held_at_close=held_at_close,
                        serves=serves,
                    )
                    retries = CONSUME_RETRIES if requests and not self.topology.passive else 0
                    await _start(subscription, channel, retries)
        except BaseException:
            await close_quietly(channel)
            raise
        self._subscriptions.append(subscription)
        return subscription

    def _leaving(self, queue: str, make: MakeDelivery, onward: str | None) -> Leaving:
        """What an rpc server's subscription does with the requests it holds as it leaves."""
        forward = self.requester.forward
        return Leaving(queue, make, forward, onward=onward, lasting=self.topology.passive)

    def check_route(self, kind: str, subject: str, durable: str | None) -> None:
        """``ConfigurationError`` for a handler this broker cannot serve, raised as it is added
        (``base.check_route``): a subject over AMQP's 255 bytes (a routing or binding key), a
        worker's or durable subscription's name that cannot name a queue."""
        check_length(subject, MAX_KEY_BYTES, "AMQP")
        if kind == "worker":
            checked_name(subject, "work queue")
        if durable is not None:
            checked_name(durable, "durable subscription name")

    def check(self, envelope: Envelope | None = None, subject: str = "") -> None:
        """Raise ``BrokerError`` unless connected; check what one call sends before it is sent
        (the broker would close the connection, and a reconnect would send it again):
        ``ConfigurationError`` for a subject over AMQP's 255 bytes, ``MessageTooLarge`` for a
        body over ``max_message_size`` or headers that do not fit in one frame (``frame_max``)."""
        if self._connection is None:
            raise BrokerError.not_connected(self.url)
        check_length(subject, MAX_KEY_BYTES, "AMQP")
        if envelope is None:
            return
        check_body(envelope.body, self._max_size, self.url, " together with the broker's")
        if envelope.headers:
            limit = min(MAX_HEADER_BYTES, self._frame_max - PROPERTIES_RESERVE)
            check_headers(envelope.headers, self.url, limit, f"frame_max is {self._frame_max}")

    @property
    def _frame_max(self) -> int:
        """The ``frame_max`` negotiated with the broker (which must hold every header table)."""
        transport = self._connection.transport if self._connection is not None else None
        if transport is None:
            return DEFAULT_FRAME_MAX
        return int(transport.connection.connection_tune.frame_max or DEFAULT_FRAME_MAX)


async def _close_within(connection: AbstractRobustConnection, seconds: float) -> None:
    """Close ``connection``, waiting at most ``seconds``; a failure is logged at DEBUG."""
    try:
        await asyncio.wait_for(connection.close(), seconds)
    except Exception:
        log.debug("pigeon: closing a connection that failed to start failed", exc_info=True)


async def _publishing_channel(connection: AbstractRobustConnection) -> AbstractRobustChannel:
    """A robust channel with publisher confirms, whose returns raise."""
    channel = connection.channel(publisher_confirms=True, on_return_raises=True)
    await channel.initialize()
    return channel


async def _start(
    subscription: RabbitSubscription, channel: AbstractRobustChannel, retries: int
) -> None:
    """Start consuming. An rpc server's auto-delete queue can be deleted between its declare and
    the consume, by the cancel of its last server, which was leaving (``NOT_FOUND``): the broker
    closes the channel, aio-pika reopens it and declares the queue anew, and the consume is
    tried again, up to ``retries`` times (``CONSUME_RETRIES``). Raises what the last try did."""
    attempt = 0
    while True:
        try:
            await subscription.start()
            return
        except aiormq.exceptions.ChannelNotFoundEntity as exc:
            attempt += 1
            if attempt > retries:
                raise
            log.debug("pigeon: %r went before its consume (%r); again", subscription.queue, exc)
            await asyncio.wait_for(underlay_of(channel), REOPEN_TIMEOUT)


def _check_numbers(options: dict[str, Any]) -> None:
    """``ConfigurationError`` for a numeric option out of its range (see ``checks``)."""
    whole_number("event_prefetch", options["event_prefetch"], 1, MAX_PREFETCH)
    whole_number("max_message_size", options["max_message_size"])
    for name in ("connect_timeout", "reconnect_patience"):
        seconds(name, options[name])


if TYPE_CHECKING:  # mypy proves the transport offers the seam

    def _conforms(transport: RabbitMQTransport) -> Transport:
        return transport
