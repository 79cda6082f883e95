"""``App``: the registry of handlers, their lifecycle, and the calls that send messages."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from pigeon import delays, subjects
from pigeon.codecs import JSON, Codec, JSONCodec
from pigeon.errors import ConfigurationError
from pigeon.handlers import inspect_handler
from pigeon.message import Message
from pigeon.observe import Observer, Observers
from pigeon.patterns import pubsub, rpc, workpool
from pigeon.patterns.rpc import DEFAULT_TIMEOUT
from pigeon.retry import Redeliver, Retry
from pigeon.transports.base import QueueSettings, Subscription, Transport
from pigeon.transports.registry import transport_for
from pigeon.transports.urls import mask_url

if TYPE_CHECKING:
    from starlette.applications import Starlette

log = logging.getLogger("pigeon")

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

DEFAULT_URL = "memory://"
Startable = pubsub.Subscriber | rpc.Responder | workpool.Worker


class App:
    """A service: handlers registered with decorators, served on one transport connection.

    ``url`` picks the transport by scheme (``memory://``, ``nats://``, ``amqp://``); without one,
    ``PIGEON_URL`` is read, else ``memory://``. ``codec`` encodes what this App sends; by default
    protobuf messages go as Protobuf and everything else as JSON, and RPC replies use the codec
    of their request. Received messages are decoded by the codec their content type names.
    ``shutdown_timeout`` bounds how long closing waits for handlers in flight; the rest go back to
    the broker unacked. ``delivery_limit`` is how many times a job whose worker kept dying is
    delivered before it is dead-lettered. ``passive=True`` declares nothing on the broker: the
    App adopts queues, exchanges and streams that exist as they are, and raises
    ``ConfigurationError`` naming one that is missing (``docs/wire.md``). Other keyword arguments
    go to the transport (on NATS, ``service=`` and ``version=`` make the rpc handlers a NATS
    service) or its client.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        codec: Codec | None = None,
        shutdown_timeout: float = 10.0,
        delivery_limit: int = 10,
        passive: bool = False,
        **transport_options: Any,
    ) -> None:
        self.url = url or os.environ.get("PIGEON_URL") or DEFAULT_URL
        self.codec = codec
        self._json = codec if isinstance(codec, JSONCodec) else JSON
        self.shutdown_timeout = shutdown_timeout
        self.settings = QueueSettings(delivery_limit=delivery_limit, passive=passive)
        self.transport: Transport = transport_for(self.url, self.settings, transport_options)
        self._handlers: list[Startable] = []
        self._rpc_subjects: set[str] = set()
        self._worker_queues: set[str] = set()
        self._subscriptions: list[Subscription] = []
        self._running = False
        self._stop_requested: asyncio.Event | None = None
        self.observers = Observers()
        self.ready = False

    def __repr__(self) -> str:
        return f"App({mask_url(self.url)!r})"

    # -- registration ------------------------------------------------------------------------

    def subscribe(
        self,
        subject: str,
        *,
        group: str | None = None,
        durable: str | None = None,
        concurrency: int = 1,
    ) -> Callable[[F], F]:
        """Call the decorated function for every event on ``subject`` (``*``/``>`` wildcards).

        Every subscriber gets every event; with ``group``, each event goes to one member of the
        group. ``durable`` names a subscription whose events the broker keeps while it is stopped.
        Events are handled in order with ``concurrency=1``, else up to that many at once. An event
        that does not decode, or whose handler raises, is logged and dropped.
        """
        subjects.validate(subject, wildcards=True)
        _check_concurrency(concurrency)

        def register(fn: F) -> F:
            spec = inspect_handler(fn, self._json)
            limit = self.settings.delivery_limit
            self._add(
                pubsub.Subscriber(subject, spec, group, durable, concurrency, self.observers, limit)
            )
            return fn

        return register

    def rpc(
        self, subject: str, *, concurrency: int = 64, codec: Codec | None = None
    ) -> Callable[[F], F]:
        """Serve requests on ``subject`` with the decorated function; its return value is the reply.

        Replicas share the requests; each serves up to ``concurrency`` at once. A handler that
        raises, or a request that fails validation, reaches the caller as ``RemoteError``. Replies
        are encoded with ``codec``, else the App's, else the codec the request came in with.
        """
        subjects.validate(subject, wildcards=True)
        _check_concurrency(concurrency)
        if subject in self._rpc_subjects:
            raise ConfigurationError(
                f"subject {subject!r} already has an rpc handler in this App; one subject, one "
                "handler (run more replicas of the App to share the load)"
            )

        def register(fn: F) -> F:
            spec = inspect_handler(fn, self._json)
            self._rpc_subjects.add(subject)
            self._add(
                rpc.Responder(subject, spec, codec or self.codec, concurrency, self.observers)
            )
            return fn

        return register

    def worker(
        self,
        queue: str,
        *,
        concurrency: int = 8,
        retry: Retry | None = None,
        redeliver: Redeliver | None = None,
        dead_letter: bool = True,
    ) -> Callable[[F], F]:
        """Process jobs of the work queue ``queue`` with the decorated function.

        Each job is handled by one worker of all running Apps, acked only after the handler
        returned; this App runs at most ``concurrency`` at once. A failing job is retried in
        process (``retry``), then redelivered by the broker (``redeliver``), then dead-lettered
        (``dead_letter=True``) or logged and dropped. A job that does not decode, or whose handler
        raises ``Reject``, is dead-lettered at once.
        """
        subjects.validate(queue)
        _check_concurrency(concurrency)
        if queue in self._worker_queues:
            raise ConfigurationError(f"queue {queue!r} already has a worker in this App")

        def register(fn: F) -> F:
            spec = inspect_handler(fn, self._json)
            self._worker_queues.add(queue)
            self._add(
                workpool.Worker(
                    queue,
                    spec,
                    concurrency,
                    retry,
                    redeliver,
                    dead_letter,
                    self.observers,
                    self.settings.delivery_limit,
                )
            )
            return fn

        return register

    @property
    def handlers(self) -> tuple[Startable, ...]:
        """The registered subscribers, rpc servers and workers, in registration order."""
        return tuple(self._handlers)

    def observe(self, observer: Observer) -> None:
        """Add an observer (metrics, tracing) that sees every message this App sends and handles."""
        self.observers.append(observer)

    def asgi(self, *, title: str = "pigeon app") -> Starlette:
        """An ASGI application serving ``/healthz``, ``/readyz``, ``/metrics`` and this App's
        AsyncAPI document (``/asyncapi``, ``.json``, ``.yaml``); see ``pigeon.asgi``. Mount it in
        FastAPI or Starlette. Raises ``ConfigurationError`` without the ``http`` extra."""
        from pigeon.asgi import asgi_app

        return asgi_app(self, title=title)

    def _add(self, handler: Startable) -> None:
        if self._running:
            raise ConfigurationError("register handlers before the App starts")
        self._handlers.append(handler)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and start every handler; returns once all of them receive messages."""
        if self._running:
            return
        await self.transport.connect()
        self._running = True
        try:
            for handler in self._handlers:
                self._subscriptions.append(await handler.start(self.transport))
        except BaseException:
            await self.close()
            raise
        self.ready = True

    async def close(self) -> None:
        """Stop taking messages, wait up to ``shutdown_timeout`` for handlers in flight, hand the
        rest back to the broker unacked, and disconnect. Idempotent."""
        if not self._running:
            return
        self._running = self.ready = False
        subscriptions, self._subscriptions = self._subscriptions, []
        await asyncio.gather(*(s.close(self.shutdown_timeout) for s in subscriptions))
        await self.transport.close()

    async def __aenter__(self) -> App:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def run(self) -> None:
        """Serve until SIGINT or SIGTERM (or ``stop()``), then close gracefully."""
        loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        signals = (signal.SIGINT, signal.SIGTERM)
        for sig in signals:
            loop.add_signal_handler(sig, self.stop)
        try:
            async with self:
                log.info(
                    "pigeon: %r serving %d handlers (pid %d)",
                    self,
                    len(self._handlers),
                    os.getpid(),
                )
                await self._stop_requested.wait()
                log.info("pigeon: stopping, draining handlers for up to %gs", self.shutdown_timeout)
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)

    def stop(self) -> None:
        """Ask a running ``run()`` to close gracefully."""
        if self._stop_requested is not None:
            self._stop_requested.set()

    # -- sending -----------------------------------------------------------------------------

    async def publish(
        self,
        subject: str,
        event: Any,
        *,
        headers: dict[str, str] | None = None,
        codec: Codec | None = None,
    ) -> None:
        """Publish ``event`` on ``subject``; returns once the broker accepted it.

        ``codec`` overrides the App's for this message.
        """
        subjects.validate(subject)
        codec = codec or self.codec
        await pubsub.publish(self.transport.events, subject, event, codec, headers, self.observers)

    async def request(
        self,
        subject: str,
        body: Any,
        *,
        reply: Any = Any,
        timeout: float = DEFAULT_TIMEOUT,
        headers: dict[str, str] | None = None,
        codec: Codec | None = None,
    ) -> Any:
        """Send a request to the server of ``subject`` and return its reply, validated as ``reply``.

        Raises ``RemoteError`` when the server's handler raised or rejected the request,
        ``NoResponders`` at once when nobody serves ``subject``, ``RequestTimeout`` when
        ``timeout`` seconds pass. Concurrent requests never wait for each other. ``codec``
        overrides the App's for the request.
        """
        subjects.validate(subject)
        return await rpc.request(
            self.transport.requests,
            subject,
            body,
            codec=codec or self.codec,
            reply=reply,
            timeout=timeout,
            headers=headers,
            observers=self.observers,
        )

    async def enqueue(
        self,
        queue: str,
        job: Any,
        *,
        headers: dict[str, str] | None = None,
        codec: Codec | None = None,
        delay: float | None = None,
        at: datetime | None = None,
    ) -> None:
        """Store ``job`` on the work queue ``queue``; returns once the broker stored it durably.

        The queue is declared if no worker has used it yet, so nothing is lost. ``codec``
        overrides the App's for this job. ``delay`` (seconds) or ``at`` (an aware datetime)
        holds the job on the broker until then; a past ``at`` or ``delay=0`` runs it now.
        Raises ``ConfigurationError`` for a negative delay, a naive datetime, or both given.
        """
        subjects.validate(queue)
        seconds = delays.seconds_until(delay, at)
        codec = codec or self.codec
        await workpool.enqueue(
            self.transport.jobs, queue, job, codec, headers, self.observers, seconds
        )

    # -- dead letters ------------------------------------------------------------------------

    async def dead_letters(self, queue: str, limit: int | None = None) -> list[Message]:
        """Up to ``limit`` dead letters of ``queue``, oldest first, each with its ``failure``."""
        envelopes = await self.transport.jobs.dead_letters(queue, limit)
        return [Message.of(envelope, queue) for envelope in envelopes]

    async def replay_dead_letters(self, queue: str, limit: int | None = None) -> int:
        """Move up to ``limit`` dead letters back onto ``queue``; returns how many moved."""
        return await self.transport.jobs.replay_dead_letters(queue, limit)

    async def purge_dead_letters(self, queue: str) -> int:
        """Delete the dead letters of ``queue``; returns how many."""
        return await self.transport.jobs.purge_dead_letters(queue)


def _check_concurrency(concurrency: int) -> None:
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigurationError(f"concurrency={concurrency!r}: give a positive integer")
