"""``nats://`` and ``tls://``: pub-sub and RPC on core NATS, work queues and durable subscriptions
on JetStream, through nats-py.

``docs/transports/nats.md`` maps each pattern onto NATS: subjects, streams, consumers, limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from nats import errors as nats_errors
from nats.aio.client import Client

from pigeon.errors import BrokerError, ConfigurationError, NoResponders, RequestTimeout
from pigeon.message import Envelope, Failure
from pigeon.transports.base import Handler, QueueSettings, Subscription
from pigeon.transports.nats import wire
from pigeon.transports.nats.consumer import JetStreamDelivery, PullConsumer
from pigeon.transports.nats.core import CoreSubscription
from pigeon.transports.nats.dead_letters import DeadLetters
from pigeon.transports.nats.errors import translate
from pigeon.transports.nats.jetstream import JetStreamApi
from pigeon.transports.nats.topology import (
    ACK_WAIT,
    QUEUE_SUBJECTS,
    WORKERS,
    Declarer,
    QueueNames,
)
from pigeon.transports.urls import mask_url

log = logging.getLogger("pigeon")

RPC_GROUP = "pigeon-rpc"
"""The queue group every server of a subject joins, so that replicas share its requests."""

DEFAULTS: dict[str, Any] = {
    "connect_timeout": 2,
    "max_reconnect_attempts": -1,
    "reconnect_time_wait": 1,
}
"""nats-py options pigeon sets unless the App passes its own: reconnect for as long as it runs."""

_CALLBACKS = ("error_cb", "disconnected_cb", "reconnected_cb")


class NatsTransport:
    """A nats-py connection offering pigeon's primitives; see ``Transport`` for the contract.

    ``url`` is one server or several, comma-separated (``nats://a:4222,b:4222``), with optional
    ``user:password@``; ``tls://`` asks for TLS. ``options`` go to ``nats.connect`` as they are
    (``user_credentials``, ``tls``, ``connect_timeout``, ...), except two settings of the streams
    and consumers pigeon declares, which every App of a queue must give alike: ``replicas``, of
    every stream (default 1; 3 on a cluster of three or more), and ``ack_wait``, the seconds after
    which JetStream delivers again a message whose worker went silent (default 30; handlers that
    run longer are kept alive with in-progress acks).
    """

    def __init__(self, url: str, settings: QueueSettings, options: dict[str, Any]) -> None:
        self._servers = _servers(url)
        self.url = ",".join(mask_url(server) for server in self._servers)
        options = dict(options)
        self._replicas = options.pop("replicas", 1)
        self._ack_wait = options.pop("ack_wait", ACK_WAIT)
        _check_jetstream_options(self._replicas, self._ack_wait)
        self._options = {**DEFAULTS, **options}
        self._settings = settings
        self._subscriptions: list[CoreSubscription | PullConsumer] = []
        self._connected = False
        self._new_client()

    def _new_client(self) -> None:
        """A fresh nats-py client, and the JetStream helpers that use it."""
        self._client = Client()
        self._api = JetStreamApi(self._client, self.url)
        self._declarer = Declarer(
            self._api,
            delivery_limit=self._settings.delivery_limit,
            replicas=self._replicas,
            ack_wait=self._ack_wait,
        )
        self._dead_letters = DeadLetters(self._api)
        self._queues: dict[str, QueueNames] = {}

    # -- connection --------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected and self._client.is_connected

    async def connect(self) -> None:
        """Connect, trying each server for ``connect_timeout`` seconds before giving up."""
        if self._connected:
            return
        self._new_client()
        budget = float(self._options["connect_timeout"]) * len(self._servers)
        options = {**self._options, **self._callbacks()}
        try:
            async with asyncio.timeout(budget):  # not wait_for: it can swallow a cancel on 3.11
                await self._client.connect(self._servers, **options)
        except (nats_errors.Error, OSError, TimeoutError) as exc:
            reason = self._client.last_error or exc
            await self._abandon()
            raise BrokerError(
                f"cannot connect to NATS at {self.url} within {budget:g}s: {reason or 'timeout'}; "
                "is the server running and reachable, and are the credentials right?"
            ) from None
        self._connected = True

    async def close(self) -> None:
        if not self._connected:
            return
        self._connected = False
        for subscription in self._subscriptions:
            await subscription.close(0)
        self._subscriptions.clear()
        if self._client.is_connected:
            with contextlib.suppress(nats_errors.Error, TimeoutError):
                await self._client.flush(timeout=2)
        await self._abandon()

    async def _abandon(self) -> None:
        with contextlib.suppress(nats_errors.Error, OSError, TimeoutError):
            await self._client.close()

    def _callbacks(self) -> dict[str, Callable[..., Awaitable[None]]]:
        given = {name: self._options.get(name) for name in _CALLBACKS}

        async def error_cb(exc: Exception) -> None:
            log.log(logging.WARNING if self._connected else logging.DEBUG, "pigeon: NATS: %s", exc)
            await _call(given["error_cb"], exc)

        async def disconnected_cb() -> None:
            self._api.connection_lost()
            if self._connected:
                log.warning("pigeon: disconnected from NATS %s, reconnecting", self._server())
            await _call(given["disconnected_cb"])

        async def reconnected_cb() -> None:
            log.warning("pigeon: reconnected to NATS %s", self._server())
            for subscription in self._subscriptions:
                if isinstance(subscription, PullConsumer):
                    subscription.reset()
            await _call(given["reconnected_cb"])

        return {
            "error_cb": error_cb,
            "disconnected_cb": disconnected_cb,
            "reconnected_cb": reconnected_cb,
        }

    def _server(self) -> str:
        """The server connected to (or last connected to), for logs: ``host:port``."""
        current = self._client.connected_url
        return f"{current.hostname}:{current.port}" if current else self.url

    # -- pub-sub and RPC on core NATS --------------------------------------------------------

    async def publish(self, subject: str, envelope: Envelope) -> None:
        self._check()
        headers = wire.outgoing(envelope)
        wire.check_size(envelope.body, headers, self._client.max_payload)
        try:  # no context manager on the hot path: it costs a generator per message
            await self._client.publish(subject, envelope.body, headers=headers)
        except (nats_errors.Error, OSError) as exc:
            raise translate(exc, self.url, f"publishing on {subject!r}") from exc

    async def subscribe(
        self,
        subject: str,
        handler: Handler,
        *,
        group: str | None,
        durable: str | None,
        concurrency: int,
    ) -> Subscription:
        self._check()
        if durable is None:
            return await self._core(subject, group or "", handler, concurrency)
        stream, consumer = await self._declarer.events(subject, durable)
        return await self._pull(
            PullConsumer(
                self._client,
                self.url,
                stream,
                consumer,
                handler,
                concurrency=concurrency,
                limit=self._settings.delivery_limit,
                ack_wait=self._ack_wait,
            )
        )

    async def serve(self, subject: str, handler: Handler, *, concurrency: int) -> Subscription:
        self._check()
        return await self._core(subject, RPC_GROUP, handler, concurrency)

    async def request(self, subject: str, envelope: Envelope, timeout: float) -> Envelope:
        self._check()
        headers = wire.outgoing(envelope)
        wire.check_size(envelope.body, headers, self._client.max_payload)
        try:
            msg = await self._client.request(subject, envelope.body, timeout, headers=headers)
        except (nats_errors.Error, OSError, TimeoutError) as exc:
            raise _request_error(exc, subject, self.url, timeout) from exc
        reply = wire.received(msg)
        reply.correlation_id = reply.correlation_id or envelope.correlation_id
        return reply

    async def reply(self, reply_to: str, envelope: Envelope) -> None:
        self._check()
        headers = wire.outgoing(envelope, reply=True)
        wire.check_size(envelope.body, headers, self._client.max_payload)
        try:
            await self._client.publish(reply_to, envelope.body, headers=headers or None)
        except (nats_errors.Error, OSError) as exc:
            raise translate(exc, self.url, "replying") from exc

    async def _core(
        self, subject: str, queue: str, handler: Handler, concurrency: int
    ) -> CoreSubscription:
        subscription = CoreSubscription(self._client, self.url, handler, concurrency)
        await subscription.start(subject, queue)
        self._subscriptions.append(subscription)
        return subscription

    # -- work queues on JetStream ------------------------------------------------------------

    async def enqueue(self, queue: str, envelope: Envelope) -> None:
        self._check()
        names = await self._queue(queue)
        headers = wire.outgoing(envelope)
        await self._api.store(
            names.subject, envelope.body, headers, redeclare=self._redeclarer(names)
        )

    async def consume(self, queue: str, handler: Handler, *, concurrency: int) -> Subscription:
        self._check()
        names = await self._queue(queue)

        async def sink(delivery: JetStreamDelivery, failure: Failure) -> None:
            await self._dead_letters.add(
                names, delivery.envelope, delivery.stream_seq, failure, self._redeclarer(names)
            )

        consumer = PullConsumer(
            self._client,
            self.url,
            names.stream,
            WORKERS,
            handler,
            concurrency=concurrency,
            limit=self._settings.delivery_limit,
            ack_wait=self._ack_wait,
            strip=len(QUEUE_SUBJECTS),
            queue=queue,
            sink=sink,
        )
        return await self._pull(consumer)

    async def dead_letters(self, queue: str, limit: int | None = None) -> list[Envelope]:
        self._check()
        letters = await self._dead_letters.read(QueueNames.of(queue), limit)
        return [envelope for envelope, _ in letters]

    async def replay_dead_letters(self, queue: str, limit: int | None = None) -> int:
        self._check()
        names = await self._queue(queue)
        return await self._dead_letters.replay(names, limit, self._redeclarer(names))

    async def purge_dead_letters(self, queue: str) -> int:
        self._check()
        return await self._dead_letters.purge(QueueNames.of(queue))

    async def _queue(self, queue: str) -> QueueNames:
        """The names of ``queue``, declared on first use by this transport."""
        names = self._queues.get(queue)
        if names is None:
            names = QueueNames.of(queue)
            await self._declarer.queue(names)
            self._queues[queue] = names
        return names

    def _redeclarer(self, names: QueueNames) -> Callable[[], Awaitable[None]]:
        async def redeclare() -> None:
            await self._declarer.queue(names)

        return redeclare

    async def _pull(self, consumer: PullConsumer) -> PullConsumer:
        await consumer.start()
        self._subscriptions.append(consumer)
        return consumer

    def _check(self) -> None:
        if not self._connected:
            raise BrokerError(f"{self.url}: not connected; use 'async with app:' or 'app.run()'")
        if self._client.is_closed:
            raise BrokerError(f"the connection to {self.url} is closed")


def _servers(url: str) -> list[str]:
    """The server URLs in ``url``: ``nats://u:p@a:4222,b:4222`` gives both with scheme and user.

    Raises ``ConfigurationError`` for a server without a host or with a bad port.
    """
    parts = [part.strip() for part in url.split(",") if part.strip()] or [url]
    first = urlsplit(parts[0])
    userinfo = first.netloc.rpartition("@")[0]
    prefix = f"{first.scheme}://{userinfo + '@' if userinfo else ''}"
    servers = [parts[0], *(part if "://" in part else prefix + part for part in parts[1:])]
    for server in servers:
        try:
            parsed = urlsplit(server)
            valid = bool(parsed.hostname) and (parsed.port is None or parsed.port > 0)
        except ValueError:
            valid = False
        if not valid:
            raise ConfigurationError(
                f"bad NATS URL {mask_url(server)!r}: give nats://host:port (or tls://), "
                "several separated by commas"
            )
    return servers


def _check_jetstream_options(replicas: Any, ack_wait: Any) -> None:
    if not isinstance(replicas, int) or not 1 <= replicas <= 5:
        raise ConfigurationError(f"replicas={replicas!r}: give a number of replicas, 1 to 5")
    if not isinstance(ack_wait, int | float) or ack_wait <= 0:
        raise ConfigurationError(f"ack_wait={ack_wait!r}: give a positive number of seconds")


def _request_error(exc: Exception, subject: str, url: str, timeout: float) -> Exception:
    if isinstance(exc, nats_errors.NoRespondersError):
        return NoResponders(f"nobody serves {subject!r} on {url}; start its rpc handler")
    if isinstance(exc, TimeoutError):
        return RequestTimeout(
            f"no reply from {subject!r} within {timeout:g}s; is its server running and fast "
            "enough? Raise the timeout or add replicas"
        )
    return translate(exc, url, f"requesting {subject!r}")


async def _call(callback: Any, *args: Any) -> None:
    if callback is not None:
        await callback(*args)
