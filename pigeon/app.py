"""``App``: the registry of handlers, their lifecycle, and the calls that send messages."""

from __future__ import annotations

import contextlib
import logging
import os
import types
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, overload

from pigeon import delays, subjects
from pigeon.codecs import JSON, Codec, JSONCodec
from pigeon.errors import ConfigurationError
from pigeon.handlers import inspect_handler
from pigeon.lifecycle import Lifecycle
from pigeon.message import Message
from pigeon.middleware import Middleware, check, send_steps
from pigeon.patterns import outgoing, pubsub, rpc, workpool
from pigeon.patterns.rpc import DEFAULT_TIMEOUT
from pigeon.patterns.serving import Startable, serving
from pigeon.routing import Lifespan, Route, Router
from pigeon.transports import checks
from pigeon.transports.base import Backlog, QueueSettings, Subscription, Transport, check_route
from pigeon.transports.registry import transport_for
from pigeon.transports.urls import mask_url

if TYPE_CHECKING:
    from starlette.applications import Starlette

log = logging.getLogger("pigeon")

T = TypeVar("T")

DEFAULT_URL = "memory://"


class App(Router, Lifecycle):
    """A service: handlers registered with decorators, served on one transport connection.

    ``url`` picks the transport by scheme (``memory://``, ``nats://``, ``amqp://``); without one,
    ``PIGEON_URL`` is read, else ``memory://``. ``codec`` encodes what this App sends; by default
    protobuf messages go as Protobuf and everything else as JSON, and RPC replies use the codec
    of their request. Received messages are decoded by the codec their content type names.
    ``shutdown_timeout`` bounds how long closing waits for handlers in flight; the rest go back to
    the broker unacked. ``delivery_limit`` is how many times a job whose worker kept dying is
    delivered before it is dead-lettered. ``middleware`` wraps every handler and every send of
    this App (outermost); see ``pigeon.middleware``. ``passive=True`` declares nothing on the
    broker: the App adopts queues, exchanges and streams that exist as they are, and raises
    ``ConfigurationError`` naming one that is missing (``docs/wire.md``). Other keyword arguments
    go to the transport (on NATS, ``service=`` and ``version=`` make the rpc handlers a NATS
    service) or its client. The decorators and ``include`` are ``Router``'s; handlers are served
    as added.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        codec: Codec | None = None,
        shutdown_timeout: float = 10.0,
        delivery_limit: int = 10,
        middleware: Sequence[Middleware] = (),
        passive: bool = False,
        **transport_options: Any,
    ) -> None:
        super().__init__()
        self.middleware = check(middleware)
        self._send = send_steps(self.middleware)
        self._lifespan_exit: contextlib.AsyncExitStack | None = None
        self._undo_state: Callable[[], None] | None = None
        self._instance = uuid.uuid4().hex[:12]
        """Tells this App's plain subscribers apart from another App's, for ``Deduplicate``."""
        self.state: Any = types.SimpleNamespace()
        """Resources for handlers and dependencies: set by the lifespans (attributes, or what they
        yield)."""
        self.url = url or os.environ.get("PIGEON_URL") or DEFAULT_URL
        self.codec = codec
        self._json = codec if isinstance(codec, JSONCodec) else JSON
        self.shutdown_timeout = shutdown_timeout
        self.settings = QueueSettings(delivery_limit=delivery_limit, passive=passive)
        self.transport: Transport = transport_for(self.url, self.settings, transport_options)
        self._handlers: list[Startable] = []
        self._subscriptions: list[Subscription] = []
        self._init_lifecycle()

    def __repr__(self) -> str:
        return f"App({mask_url(self.url)!r})"

    @property
    def shutdown_timeout(self) -> float:
        """Seconds closing waits for handlers in flight (0: none); setting anything but a
        finite number, 0 or more, raises ``ConfigurationError``."""
        return self._shutdown_timeout

    @shutdown_timeout.setter
    def shutdown_timeout(self, seconds: float) -> None:
        meaning = "closing waits for handlers in flight (default 10)"
        self._shutdown_timeout = checks.duration("shutdown_timeout", seconds, meaning)

    # -- registration ------------------------------------------------------------------------

    @property
    def handlers(self) -> tuple[Startable, ...]:
        """The registered subscribers, rpc servers and workers, in registration order."""
        return tuple(self._handlers)

    def use(self, middleware: Middleware) -> None:
        """Add ``middleware`` around every handler and send of this App, inside those added
        before; see ``pigeon.middleware``. Raises ``ConfigurationError`` once the App started."""
        if self._running:
            raise ConfigurationError("add middleware before the App starts")
        self.middleware = (*self.middleware, *check([middleware]))
        self._send = send_steps(self.middleware)

    def observe(self, observer: Middleware) -> None:
        """Same as ``use``: metrics and tracing are middleware."""
        self.use(observer)

    def asgi(self, *, title: str = "pigeon app") -> Starlette:
        """An ASGI application serving ``/healthz``, ``/readyz``, ``/metrics`` and this App's
        AsyncAPI document (``/asyncapi``, ``.json``, ``.yaml``); see ``pigeon.asgi``. Mount it in
        FastAPI or Starlette. Raises ``ConfigurationError`` without the ``http`` extra."""
        from pigeon.asgi import asgi_app

        return asgi_app(self, title=title)

    def include(self, router: Router) -> None:
        """Add ``router``'s handlers and lifespans; see ``Router.include``. Raises
        ``ConfigurationError`` once the App started."""
        if self._running:
            raise ConfigurationError("include routers before the App starts")
        super().include(router)

    def _add(self, route: Route) -> None:
        if self._running:
            raise ConfigurationError("register handlers before the App starts")
        check_route(self.transport, route.kind, route.subject, route.options.get("durable"))
        self._routes.add(route)
        self._handlers.append(self._serve(route))

    def _serve(self, route: Route) -> Startable:
        spec = route.handler
        if self._json is not JSON:
            spec = inspect_handler(spec.fn, self._json)
        return serving(route, replace(spec, app=self), self.codec, self.settings.delivery_limit)

    # -- lifecycle (pigeon.lifecycle) --------------------------------------------------------

    def lifespan(self, fn: Lifespan) -> Lifespan:
        """``Router.lifespan``; raises ``ConfigurationError`` once the App started."""
        if self._running:
            raise ConfigurationError("set the lifespan before the App starts")
        return super().lifespan(fn)

    # -- sending -----------------------------------------------------------------------------

    @pubsub.coroutine_function
    def publish(
        self,
        subject: str,
        event: Any,
        *,
        headers: dict[str, str] | None = None,
        codec: Codec | None = None,
    ) -> Coroutine[Any, Any, None]:
        """Publish ``event`` on ``subject`` (``codec``: instead of the App's); returns once the
        broker accepted it. Checks and encodes at the call, raises at the await (``pubsub``):
        ``ConfigurationError`` for a subject or header name pigeon refuses (``docs/wire.md``)."""
        try:
            if subject not in pubsub.checked:
                pubsub.check(subject)
            envelope = outgoing.envelope_for(event, codec or self.codec, headers)
            if self._send:
                return pubsub.publish_through(self.transport.events, self._send, envelope, subject)
            return self.transport.events.publish(subject, envelope)
        except Exception as exc:
            return pubsub.raise_at_await(exc)

    @overload
    async def request(
        self,
        subject: str,
        body: Any,
        *,
        reply: type[T],
        timeout: float = ...,
        headers: dict[str, str] | None = ...,
        codec: Codec | None = ...,
    ) -> T: ...

    @overload
    async def request(
        self,
        subject: str,
        body: Any,
        *,
        reply: types.UnionType,
        timeout: float = ...,
        headers: dict[str, str] | None = ...,
        codec: Codec | None = ...,
    ) -> Any: ...

    @overload
    async def request(
        self,
        subject: str,
        body: Any,
        *,
        timeout: float = ...,
        headers: dict[str, str] | None = ...,
        codec: Codec | None = ...,
    ) -> Any: ...

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
        overrides the App's for the request. A ``timeout`` that is not a positive, finite number
        of seconds is a ``ConfigurationError``, as are a subject or header name pigeon refuses.
        """
        subjects.validate_queue(subject)
        rpc.check_timeout(timeout)
        return await rpc.request(
            self.transport.requests,
            subject,
            body,
            codec=codec or self.codec,
            reply=reply,
            timeout=timeout,
            headers=headers,
            send=self._send,
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
        Raises ``ConfigurationError`` for a negative delay, a naive datetime, or both given, and
        for a queue or header name pigeon refuses (``docs/wire.md``, "Names pigeon refuses").
        """
        subjects.validate_queue(queue)
        seconds = delays.seconds_until(delay, at)
        codec = codec or self.codec
        await workpool.enqueue(self.transport.jobs, queue, job, codec, headers, self._send, seconds)

    # -- dead letters ------------------------------------------------------------------------

    async def dead_letters(self, queue: str, limit: int | None = None) -> list[Message]:
        """Up to ``limit`` dead letters of ``queue``, oldest first, each with its ``failure``."""
        subjects.validate_queue(queue)
        envelopes = await self.transport.jobs.dead_letters(queue, workpool.check_limit(limit))
        return [Message.of(envelope, queue) for envelope in envelopes]

    async def replay_dead_letters(self, queue: str, limit: int | None = None) -> int:
        """Move up to ``limit`` dead letters back onto ``queue``; returns how many moved. A
        queue with none gets 0 and is not declared (a misspelt name stays unknown)."""
        subjects.validate_queue(queue)
        return await self.transport.jobs.replay_dead_letters(queue, workpool.check_limit(limit))

    async def purge_dead_letters(self, queue: str) -> int:
        """Delete the dead letters of ``queue``; returns how many."""
        subjects.validate_queue(queue)
        return await self.transport.jobs.purge_dead_letters(queue)

    async def backlog(self, queue_or_subject: str, *, durable: str | None = None) -> Backlog:
        """What waits on the work queue ``queue_or_subject`` now, or with ``durable``, what the
        broker keeps for that durable subscription of the subject: ``ready``, ``unacked``,
        ``dead_letters`` (``None`` for a subscription), ``consumers`` (counts) and ``oldest_age``
        (seconds), each ``None`` where the broker cannot tell (``docs/backlog.md``). Declares
        nothing; raises ``ConfigurationError`` for a queue or durable subscription the broker
        does not have, ``BrokerError`` when it cannot answer."""
        if durable is None:
            subjects.validate_queue(queue_or_subject)
            return await self.transport.jobs.backlog(queue_or_subject)
        subjects.validate(queue_or_subject, wildcards=True)
        subjects.check_name(durable, "durable")
        return await self.transport.events.backlog(queue_or_subject, durable)
