"""``nats://`` and ``tls://``: pub-sub and RPC on core NATS, work queues and durable subscriptions
on JetStream, through nats-py.

``docs/transports/nats.md`` maps each pattern onto NATS: subjects, streams, consumers, limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from nats import errors as nats_errors
from nats.aio.client import Client

from pigeon.errors import BrokerError
from pigeon.failures import describe
from pigeon.message import Envelope
from pigeon.transports.base import Handler, QueueSettings, Transport
from pigeon.transports.limits import check_headers
from pigeon.transports.nats import wire
from pigeon.transports.nats.client import new_client
from pigeon.transports.nats.consumer import PullConsumer
from pigeon.transports.nats.core import CoreSubscription
from pigeon.transports.nats.dead_letters import DeadLetters
from pigeon.transports.nats.events import NatsEvents
from pigeon.transports.nats.failover import CLOSE_PATIENCE, NoAnswer, abort, answering
from pigeon.transports.nats.jetstream import JetStreamApi
from pigeon.transports.nats.jobs import NatsJobs
from pigeon.transports.nats.options import Options, servers_of
from pigeon.transports.nats.requests import NatsRequests
from pigeon.transports.nats.topology import Declarer, QueueNames
from pigeon.transports.nats.writes import WritesAtOnce
from pigeon.transports.sends import Sends
from pigeon.transports.slow import SlowConsumers
from pigeon.transports.urls import mask_url

log = logging.getLogger("pigeon")

_CALLBACKS = ("error_cb", "disconnected_cb", "reconnected_cb", "closed_cb")

CONNECT_ADVICE = (
    "is the server running and reachable, is it a NATS port, and are the credentials right?"
)


class NatsTransport:
    """A nats-py connection offering pigeon's primitives; see ``Transport`` for the contract.

    ``url`` is one server or several, comma-separated (``nats://a:4222,b:4222``), with optional
    ``user:password@``; ``tls://`` asks for TLS. ``options`` go to ``nats.connect`` as they are
    (``user_credentials``, ``tls``, ``connect_timeout``, ...; one it does not take is a
    ``ConfigurationError`` at ``App()``: see ``options``), except two settings of the streams
    and consumers pigeon declares, which every App of a queue must give alike: ``replicas``, of
    every stream (default 1; 3 on a cluster of three or more), and ``ack_wait``, the seconds after
    which JetStream delivers again a message whose worker went silent (default 5, so that a
    killed worker's jobs come back within seconds; handlers that run longer are kept alive with
    in-progress acks every third of it). ``service`` (and ``version``, semantic,
    default ``0.0.0``) make the App's rpc handlers endpoints of a NATS service, listed by
    ``nats micro ls|info|stats`` (see ``services``).
    """

    def __init__(self, url: str, settings: QueueSettings, options: dict[str, Any]) -> None:
        self._servers = servers_of(url)
        self.url = ",".join(mask_url(server) for server in self._servers)
        given = Options.of(options)
        self._replicas = given.replicas
        self._ack_wait_given = given.ack_wait_given
        self.ack_wait = given.ack_wait
        self._patience = given.patience
        self.max_control_line: int = given.max_control_line
        self._pending_limits = given.pending_limits
        self.services = given.services
        self._options = given.client
        self._settings = settings
        self._subscriptions: list[CoreSubscription | PullConsumer] = []
        self.slow_consumers = SlowConsumers(
            self.url, advice="raise the subscription's max_pending or the App's pending_bytes_limit"
        )
        self._connected = False
        self.sendable: set[str] = set()
        """Subjects ``check_sendable`` passed since connecting: one lookup for its checks
        (``NatsEvents.publish``). Emptied at close only (a reconnect changes none of them)."""
        self._reviving: asyncio.Task[None] | None = None
        self.sends = Sends(self.url)
        """Enqueues (and publishes that wait on the socket) under way, which ``close`` lets
        finish."""
        self._new_client()
        self.events = NatsEvents(self)
        self.requests = NatsRequests(self)
        self.jobs = NatsJobs(self)

    def _new_client(self) -> None:
        """A fresh nats-py client, and the JetStream helpers that use it."""
        self.client: Client = new_client()
        self.api = JetStreamApi(self.client, self.url, self._patience)
        self.declarer = Declarer(
            self.api,
            delivery_limit=self._settings.delivery_limit,
            replicas=self._replicas,
            ack_wait=self.ack_wait,
            ack_wait_given=self._ack_wait_given,
            passive=self._settings.passive,
        )
        self.dead_letter_store = DeadLetters(self.api)
        self.declared: dict[tuple[str, bool], QueueNames] = {}
        """Work queues declared on this connection, by name and whether a worker declared them
        (``strict``: its settings checked)."""

    # -- connection --------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Connected, and (after nats-py closed its client for good) every subscription moved
        to the new client: what readiness reports."""
        reviving = self._reviving is not None and not self._reviving.done()
        return self._connected and not reviving and self.client.is_connected

    @property
    def dropped_events(self) -> Mapping[str, int]:
        """Events dropped since the start (slow consumers, and those held by a subscription as
        it closed), by the subscription's subject as declared."""
        return self.slow_consumers.dropped

    async def connect(self) -> None:
        """Connect, trying each server for ``connect_timeout`` seconds before giving up."""
        if self._connected:
            return
        self._new_client()
        await self._connect_client()
        self.sends = Sends(self.url)
        self._connected = True

    async def _connect_client(self) -> None:
        """Connect ``self.client``; ``BrokerError`` naming the (masked) servers if it cannot."""
        patience = float(self._options["connect_timeout"])
        budget = (patience + CLOSE_PATIENCE) * len(self._servers)  # a failed one is closed too
        options = {**self._options, **self._callbacks()}
        try:
            async with asyncio.timeout(budget):  # not wait_for: it can swallow a cancel on 3.11
                await self.client.connect(self._servers, **options)
            # nats-py ends its handshake at any line after CONNECT (a "+OK", even the socket's
            # end), not only the PONG: one round trip tells whether a server really answers.
            await answering(self.client, patience, len(self._servers))
        except asyncio.CancelledError:
            await self._abandon()  # else nats-py goes on reconnecting, for an App never started
            raise
        except (nats_errors.Error, OSError, TimeoutError) as exc:
            reason = exc if isinstance(exc, NoAnswer) else self.client.last_error or exc
            await self._abandon()
            raise BrokerError(
                f"cannot connect to NATS at {self.url} (connect_timeout {patience:g}s per server, "
                f"for its handshake and then a PING): {str(reason) or 'no answer'}; "
                + (NoAnswer.ADVICE if isinstance(exc, NoAnswer) else CONNECT_ADVICE)
            ) from None

    async def _revive(self) -> None:
        """nats-py closed its client for good (after a server ``-ERR``, or when it gave up
        reconnecting): connect a new client, every second until it works or we close, and move
        every subscription and consumer onto it."""
        log.warning("pigeon: the NATS client closed for good; connecting anew to %s", self.url)
        self.api.connection_lost()
        self.requests.fail_all()
        while self._connected:
            self._new_client()
            try:
                await self._connect_client()
            except BrokerError as exc:
                log.warning("pigeon: %s; trying again in 1s", describe(exc))
                await asyncio.sleep(1.0)
                continue
            try:
                for subscription in list(self._subscriptions):
                    await subscription.move_to(self.client)
                if self.services is not None:
                    await self.services.move_to(self.client)
            except (BrokerError, nats_errors.Error) as exc:
                log.error("pigeon: could not subscribe again after reconnecting: %s", describe(exc))
            log.warning("pigeon: connected anew to NATS %s", self._server())
            return

    async def close(self) -> None:
        """Let the sends under way finish (up to ``reconnect_patience`` seconds, while
        connected), fail the rest with ``BrokerError`` (see ``pigeon.transports.sends``), then
        close every subscription, fail the requests waiting and disconnect. Idempotent."""
        if not self._connected:
            return
        self._connected = False
        self.sendable.clear()
        await self.sends.settle(self._patience if self.client.is_connected else 0)
        if self._reviving is not None:
            self._reviving.cancel()
            await asyncio.gather(self._reviving, return_exceptions=True)
        self.requests.fail_all()
        for subscription in self._subscriptions:
            await subscription.close(0)
        self._subscriptions.clear()
        self.slow_consumers.flush()
        if self.services is not None:
            await self.services.stop()
        if self.client.is_connected:
            with contextlib.suppress(nats_errors.Error, TimeoutError):
                await self.client.flush(timeout=2)
        await self._abandon()

    async def _abandon(self) -> None:
        """Close a client that failed to connect, waiting ``CLOSE_PATIENCE`` at most (a server
        that went silent half-way into TLS leaves nats-py waiting for the socket to close)."""
        try:
            async with asyncio.timeout(CLOSE_PATIENCE):
                await self.client.close()
        except TimeoutError:
            abort(getattr(self.client, "_transport", None))
        except (nats_errors.Error, OSError):
            pass
        except asyncio.CancelledError:
            # nats-py 2.16: its reconnect task awaits the old socket's close waiter, and its
            # close cancels that task, which cancels the shared waiter its close then awaits:
            # the socket is closed, only this caller's own cancellation must propagate.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            log.debug("pigeon: nats-py's close met its cancelled reconnect on %s", self.url)

    def _callbacks(self) -> dict[str, Callable[..., Awaitable[None]]]:
        given = {name: self._options.get(name) for name in _CALLBACKS}

        async def error_cb(exc: Exception) -> None:
            if isinstance(exc, nats_errors.SlowConsumerError):
                self.slow_consumers.dropped_one(self._declared(exc))  # logged once per interval
            else:
                level = logging.WARNING if self._connected else logging.DEBUG
                log.log(level, "pigeon: NATS: %s", describe(exc))
            await _call(given["error_cb"], exc)

        async def disconnected_cb() -> None:
            self.api.connection_lost()
            if self._connected:
                log.warning("pigeon: disconnected from NATS %s, reconnecting", self._server())
            await _call(given["disconnected_cb"])

        client = self.client

        async def closed_cb() -> None:
            if self._connected and client is self.client:  # not our close(): nats-py gave up
                reviving = self._reviving
                if reviving is None or reviving.done():
                    self._reviving = asyncio.create_task(self._revive())
            await _call(given["closed_cb"])

        async def reconnected_cb() -> None:
            if self._connected:
                log.warning("pigeon: reconnected to NATS %s", self._server())
            else:  # start moved on from a silent server (failover.answering)
                log.warning("pigeon: starting on NATS %s instead", self._server())
            for subscription in self._subscriptions:
                if isinstance(subscription, PullConsumer):
                    subscription.reset()
            await _call(given["reconnected_cb"])

        return {
            "error_cb": error_cb,
            "disconnected_cb": disconnected_cb,
            "reconnected_cb": reconnected_cb,
            "closed_cb": closed_cb,
        }

    def _declared(self, slow: nats_errors.SlowConsumerError) -> str:
        """The subject of the subscription that dropped a message, as its handler declared it
        (a wildcard's drops are one count, not one per concrete subject)."""
        for subscription in self._subscriptions:
            if isinstance(subscription, CoreSubscription) and subscription.owns(slow.sub):
                return subscription.declared
        return slow.subject

    def _server(self) -> str:
        """The server connected to (or last connected to), for logs: ``host:port``."""
        current = self.client.connected_url
        return f"{current.hostname}:{current.port}" if current else self.url

    # -- what the roles share -----------------------------------------------------------------

    def check(self, envelope: Envelope | None = None, subject: str = "", reserve: int = 0) -> None:
        """Raise ``BrokerError`` unless connected; check what one call sends against the
        server's limits before it is sent (the server would close the connection): headers
        (``MessageTooLarge``), and a control line with ``subject`` and ``reserve`` bytes more
        (``ConfigurationError``)."""
        if not self._connected:
            raise BrokerError.not_connected(self.url)
        if self.client.is_closed:
            raise BrokerError(f"the connection to {self.url} is closed")
        if subject and len(subject) * 4 + reserve + wire.LINE_OVERHEAD > self.max_control_line:
            wire.check_control_line(subject, reserve, self.max_control_line)  # then count bytes
        if envelope is not None and envelope.headers:
            check_headers(envelope.headers, self.url)

    def check_sendable(self, envelope: Envelope, subject: str) -> None:
        """``check`` and nats-py's subject check (``BadSubjectError``); ``subject`` is then in
        ``sendable`` (at most 4,096) unless ``envelope`` has user headers, checked each time."""
        self.check(envelope, subject)
        if isinstance(self.client, WritesAtOnce):
            self.client.check_subject(subject)
        if not envelope.headers:
            if len(self.sendable) >= 4096:
                self.sendable.clear()
            self.sendable.add(subject)

    async def start_core(
        self,
        subject: str,
        queue: str,
        handler: Handler,
        concurrency: int,
        *,
        requests: bool = False,
        strip: int = 0,
        max_pending: int | None = None,
    ) -> CoreSubscription:
        """A core NATS subscription (in queue group ``queue`` unless empty), closed with us;
        ``requests`` and ``strip`` as ``CoreSubscription`` takes them; ``max_pending`` (else the
        App's ``pending_msgs_limit``): the most messages it holds, those being handled included."""
        self.check(subject=subject, reserve=len(queue.encode()) + 10)
        subscription = CoreSubscription(
            self.client,
            self.url,
            handler,
            concurrency,
            requests=requests,
            strip=strip,
            drops=self.slow_consumers,
            max_pending=max_pending,
        )
        await subscription.start(subject, queue, self._pending_limits)
        self._subscriptions.append(subscription)
        return subscription

    async def start_pull(self, consumer: PullConsumer) -> PullConsumer:
        """Start a JetStream pull consumer, closed with us."""
        await consumer.start()
        self._subscriptions.append(consumer)
        return consumer


async def _call(callback: Any, *args: Any) -> None:
    if callback is not None:
        await callback(*args)


if TYPE_CHECKING:  # mypy proves the transport offers the seam

    def _conforms(transport: NatsTransport) -> Transport:
        return transport
