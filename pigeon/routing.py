"""``Router``: handlers declared apart from any App, added to one with ``App.include``.

A router takes the same decorators as an App. Its handlers are checked when decorated (the
signature, the dependency graph, the subject) and added to an App, with the router's prefix and
middleware, when the App (or a router it is then included in) includes it. A router may have a
lifespan too (``pigeon.lifespan``), which the App enters before its handlers start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

from pigeon import subjects
from pigeon.codecs import Codec
from pigeon.errors import ConfigurationError
from pigeon.handlers import HandlerSpec, inspect_handler
from pigeon.lifespan import LifespanFactory, factory
from pigeon.middleware import Middleware, check
from pigeon.retry import Redeliver, Retry

F = TypeVar("F", bound=Callable[..., Any])
Lifespan = TypeVar("Lifespan", bound=Callable[..., Any])

Kind = Literal["subscribe", "rpc", "worker"]


@dataclass(frozen=True, slots=True)
class Route:
    """One decorated handler: its kind, subject (or queue), options and middleware so far."""

    kind: Kind
    subject: str
    handler: HandlerSpec
    options: dict[str, Any] = field(default_factory=dict)
    middleware: tuple[Middleware, ...] = ()

    def nested(self, prefix: str, middleware: tuple[Middleware, ...]) -> Route:
        """This route as seen from a router that includes its own: prefixed, and with that
        router's middleware outside this route's."""
        return replace(
            self, subject=prefix + self.subject, middleware=(*middleware, *self.middleware)
        )


class Router:
    """A group of handlers with a common subject ``prefix`` and ``middleware``.

    ``prefix`` is prepended as is to every subject and queue (``Router(prefix="orders.")`` and
    ``@router.worker("render")`` serve ``orders.render``); it is empty or ends with a dot
    (``ConfigurationError`` otherwise: ``"orders"`` would serve ``ordersrender``).
    ``middleware`` wraps this router's handlers, inside the App's and outside each handler's
    own. A router's handlers are copied
    into an App (or a router) when it includes it: include a router once it is complete. Its
    ``lifespan``, if any, goes along.
    """

    def __init__(self, prefix: str = "", *, middleware: Sequence[Middleware] = ()) -> None:
        if not isinstance(prefix, str):
            raise ConfigurationError(f"prefix={prefix!r}: give a string such as 'orders.'")
        if prefix and not prefix.endswith("."):
            raise ConfigurationError(
                f"prefix={prefix!r}: a prefix is prepended as written, so with it 'created' "
                f"would be {prefix + 'created'!r}; end it with a dot ({prefix + '.'!r}), "
                "subjects being dot-separated tokens"
            )
        if prefix:
            try:
                subjects.validate(prefix + "x", wildcards=True)
            except ConfigurationError as exc:
                raise ConfigurationError(
                    f"prefix={prefix!r} cannot start a subject: {exc}"
                ) from None
        self.prefix = prefix
        self.middleware = check(middleware, where="Router")
        self._routes = Routes()
        self._lifespan: LifespanFactory | None = None
        self._included_lifespans: list[LifespanFactory] = []

    @property
    def routes(self) -> tuple[Route, ...]:
        """The handlers declared here or included, in order, without this router's prefix."""
        return tuple(self._routes)

    @property
    def lifespans(self) -> tuple[LifespanFactory, ...]:
        """This router's lifespan, then those of the routers it included, in include order."""
        own = () if self._lifespan is None else (self._lifespan,)
        return (*own, *self._included_lifespans)

    def lifespan(self, fn: Lifespan) -> Lifespan:
        """Decorate the lifespan: an async generator function taking the App (or a function
        returning an async context manager), entered after the App connected and before any
        handler starts, left after the last handler drained. A lifespan may yield a mapping of
        names to set on ``app.state`` (``ConfigurationError`` for a name set already); an App's
        may yield another object instead, which becomes ``app.state``; a router's yields ``None``
        or a mapping. A failure entering it fails ``App.start()`` with that error. Raises
        ``ConfigurationError`` for a second lifespan (write one that enters both), a sync
        generator function or an ``async def`` without ``yield``."""
        if self._lifespan is not None:
            raise ConfigurationError(
                f"this {type(self).__name__} already has a lifespan; use one that enters all"
            )
        self._lifespan = factory(fn)
        return fn

    def subscribe(
        self,
        subject: str,
        *,
        group: str | None = None,
        durable: str | None = None,
        concurrency: int = 1,
        max_pending: int | None = None,
        middleware: Sequence[Middleware] = (),
    ) -> Callable[[F], F]:
        """Call the decorated function for every event on ``subject`` (``*``/``>`` wildcards).

        Every subscriber gets every event; with ``group``, each event goes to one member of the
        group. ``durable`` names a subscription whose events the broker keeps while it is stopped.
        Events are handled in order with ``concurrency=1``, else up to that many at once. An event
        that does not decode, or whose handler raises, is logged and dropped. ``max_pending``: the
        most events this subscription holds in this process, delivered and not handled yet (those
        being handled included); ``None``: the transport's default. Beyond it each broker does
        its own (``docs/patterns/pubsub.md``): core NATS and Redis Pub/Sub drop events, memory makes
        ``publish`` wait, the others keep them on the broker. ``middleware`` wraps this handler
        only, inside the router's and the App's. Raises ``ConfigurationError`` for a
        ``max_pending`` that is not an integer of at least ``concurrency``.
        """
        subjects.validate(subject, wildcards=True)
        subjects.check_name(group, "group")
        subjects.check_name(durable, "durable")
        _check_max_pending(max_pending, concurrency)
        options = {
            "group": group,
            "durable": durable,
            "concurrency": concurrency,
            "max_pending": max_pending,
        }
        return self._decorator("subscribe", subject, options, middleware)

    def rpc(
        self,
        subject: str,
        *,
        concurrency: int = 64,
        codec: Codec | None = None,
        middleware: Sequence[Middleware] = (),
    ) -> Callable[[F], F]:
        """Serve requests on ``subject`` with the decorated function; its return value is the reply.

        Replicas share the requests; each serves up to ``concurrency`` at once. A handler that
        raises, or a request that fails validation, reaches the caller as ``RemoteError``. Replies
        are encoded with ``codec``, else the App's, else the codec the request came in with.
        Raises ``ConfigurationError`` when ``subject`` already has an rpc handler, or overlaps
        another rpc subject of the App (``x.*`` and ``x.y``).
        """
        subjects.validate_queue(subject, wildcards=True)
        options = {"concurrency": concurrency, "codec": codec}
        return self._decorator("rpc", subject, options, middleware)

    def worker(
        self,
        queue: str,
        *,
        concurrency: int = 8,
        retry: Retry | None = None,
        redeliver: Redeliver | None = None,
        dead_letter: bool = True,
        middleware: Sequence[Middleware] = (),
    ) -> Callable[[F], F]:
        """Process jobs of the work queue ``queue`` with the decorated function.

        Each job is handled by one worker of all running Apps, acked only after the handler
        returned; this App runs at most ``concurrency`` at once. A failing job is retried in
        process (``retry``), then redelivered by the broker (``redeliver``), then dead-lettered
        (``dead_letter=True``) or logged and dropped. A job that does not decode, or whose handler
        raises ``Reject``, is dead-lettered at once. Raises ``ConfigurationError`` when ``queue``
        already has a worker, or ends in ``.dlq`` or ``.delivery-limit`` (pigeon's own queues).
        """
        subjects.validate_queue(queue)
        options = {
            "concurrency": concurrency,
            "retry": retry,
            "redeliver": redeliver,
            "dead_letter": dead_letter,
        }
        return self._decorator("worker", queue, options, middleware)

    def include(self, router: Router) -> None:
        """Add ``router``'s handlers here, under its prefix and inside its middleware, and its
        lifespans after those included before.

        Raises ``ConfigurationError`` when that gives a work queue two workers, two rpc subjects
        that one request could match (``x.*`` and ``x.y``), the same function subscribed twice
        to a subject with the same group and durable name, or a router's lifespan twice.
        """
        if router is self:
            raise ConfigurationError("a router cannot include itself")
        twice = set(self.lifespans).intersection(router.lifespans)
        if twice:
            raise ConfigurationError(
                f"lifespan {_name(next(iter(twice)))} would be entered twice: a router was "
                "included twice (directly and through another router?); include it once"
            )
        for route in router.routes:
            self._add(route.nested(router.prefix, router.middleware))
        self._included_lifespans.extend(router.lifespans)

    def _decorator(
        self, kind: Kind, subject: str, options: dict[str, Any], middleware: Sequence[Middleware]
    ) -> Callable[[F], F]:
        _check_concurrency(options["concurrency"])
        handler_middleware = check(middleware, where=kind)

        def register(fn: F) -> F:
            route = Route(kind, subject, inspect_handler(fn), options, handler_middleware)
            self._add(route)
            return fn

        return register

    def _add(self, route: Route) -> None:
        """Keep ``route``; an App overrides this to serve it."""
        self._routes.add(route)


class Routes:
    """Routes in the order they were added, refusing one that cannot be served next to the
    others in one App (see ``add``). Indexed, so adding n routes costs O(n) (O(n * w) with ``w``
    wildcard rpc subjects), not O(n^2)."""

    def __init__(self) -> None:
        self._all: list[Route] = []
        self._queues: set[str] = set()
        self._subscriptions: set[tuple[str, int, str | None, str | None]] = set()
        self._rpc: dict[str, Route] = {}
        self._rpc_wildcards: list[Route] = []

    def __iter__(self) -> Iterator[Route]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def add(self, route: Route) -> None:
        """Keep ``route``. Raises ``ConfigurationError`` for an rpc subject that a request could
        match along with another's, a work queue with a worker already, or the same function
        subscribed to the same subject with the same group and durable name (each event would
        be handled twice)."""
        if route.kind == "rpc":
            self._add_rpc(route)
        elif route.kind == "worker":
            if route.subject in self._queues:
                raise ConfigurationError(
                    f"queue {route.subject!r} already has a worker in this App"
                )
            self._queues.add(route.subject)
        else:
            self._add_subscription(route)
        self._all.append(route)

    def _add_rpc(self, route: Route) -> None:
        same = self._rpc.get(route.subject)
        if same is not None:
            raise ConfigurationError(_rpc_clash(same, route))
        wildcard = subjects.is_wildcard(route.subject)
        for other in self._rpc.values() if wildcard else self._rpc_wildcards:
            if overlap(other.subject, route.subject):
                raise ConfigurationError(_rpc_clash(other, route))
        self._rpc[route.subject] = route
        if wildcard:
            self._rpc_wildcards.append(route)

    def _add_subscription(self, route: Route) -> None:
        options = route.options
        key = (route.subject, id(route.handler.fn), options["group"], options["durable"])
        if key in self._subscriptions:
            raise ConfigurationError(
                f"{route.handler.name} already subscribed to {route.subject!r} with the same "
                "group and durable name in this App (a router included twice, directly and "
                "through another router?); each event would be handled twice: include it once"
            )
        self._subscriptions.add(key)


def _rpc_clash(other: Route, route: Route) -> str:
    if other.subject == route.subject:
        return (
            f"subject {route.subject!r} already has an rpc handler in this App; one subject, one "
            "handler (run more replicas of the App to share the load)"
        )
    return (
        f"rpc subjects {route.subject!r} and {other.subject!r} overlap: a request could go to "
        "either, and which one answers differs by transport; make them disjoint (one subject, "
        "one handler)"
    )


def _name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


def _check_concurrency(concurrency: int) -> None:
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigurationError(f"concurrency={concurrency!r}: give a positive integer")


def _check_max_pending(max_pending: int | None, concurrency: int) -> None:
    if max_pending is None:
        return
    _check_concurrency(concurrency)
    if not isinstance(max_pending, int) or isinstance(max_pending, bool) or max_pending < 1:
        raise ConfigurationError(
            f"max_pending={max_pending!r}: give an integer of at least 1 (the most events the "
            "subscription holds), or None for the transport's default"
        )
    if max_pending < concurrency:
        raise ConfigurationError(
            f"max_pending={max_pending} counts the events being handled too: give at least "
            f"concurrency={concurrency} (or lower concurrency), or None for the transport's default"
        )


def overlap(a: str, b: str) -> bool:
    """Whether some subject matches both patterns ``a`` and ``b`` (``*``: one token, ``>``: one
    or more tokens, last)."""
    return _overlap(a.split("."), b.split("."))


def _overlap(a: list[str], b: list[str]) -> bool:
    if a and a[0] == ">":
        return bool(b)
    if b and b[0] == ">":
        return bool(a)
    if not a or not b:
        return not a and not b
    if a[0] == "*" or b[0] == "*" or a[0] == b[0]:
        return _overlap(a[1:], b[1:])
    return False
