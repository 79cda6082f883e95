"""Middleware: the one extension point around handling and around sending.

A middleware is an object with any of three methods: ``async def handle(self, message,
call_next)`` (around each call of a handler, from decoding to the handler's return), ``async def
send(self, message, call_next)`` (around each publish, request and enqueue of the App), and
``async def settled(self, message, outcome)`` (told how a worker settled a delivery of a job:
``Outcome``). ``handle`` and ``send`` receive a ``Message`` and ``call_next``, the rest of the
chain; they return what ``await call_next(message)`` returned (the handler's result; for a
request, the reply as a ``Message``), or something else, or raise.

Order: the App's middleware is outermost, then each including router's (outer router first), then
the handler's own. With ``Retry``, ``handle`` runs once per call, inside the retry loop, so an
exception it raises is retried, redelivered and dead-lettered like the handler's own.

With no middleware nothing is composed and the message path is the same as without this module;
a ``Message`` is built only for a handler or middleware that asks for one.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeAlias, runtime_checkable

from pigeon import subjects
from pigeon.errors import ConfigurationError
from pigeon.headers import SENT_BY_PIGEON, check_user_headers
from pigeon.message import Message

log = logging.getLogger("pigeon")

CallNext: TypeAlias = Callable[[Message], Awaitable[Any]]
"""The rest of a middleware chain: call it with the (possibly changed) message, await the result."""


@runtime_checkable
class HandleMiddleware(Protocol):
    """Wraps each call of a handler."""

    async def handle(self, message: Message, call_next: CallNext) -> Any:
        """Return ``await call_next(message)`` (the handler's result), or skip, change or raise."""
        ...


@runtime_checkable
class SendMiddleware(Protocol):
    """Wraps each message the App publishes, requests or enqueues."""

    async def send(self, message: Message, call_next: CallNext) -> Any:
        """Return ``await call_next(message)``; ``message.headers`` may be added to, and a message
        with another subject (``dataclasses.replace``) passed on."""
        ...


class Outcome(enum.StrEnum):
    """How a worker settled one delivery of a job."""

    ACKED = "acked"
    """The handler returned (or a middleware such as ``Deduplicate`` skipped it): done."""
    REDELIVERED = "redelivered"
    """Handed back to the broker by ``Redeliver``, to come again after a delay."""
    DEAD_LETTERED = "dead_lettered"
    """Moved to the queue's dead letters (failed for good, did not decode, ``Reject``, or over
    the delivery limit)."""
    DISCARDED = "discarded"
    """Failed for good with ``dead_letter=False``: logged and dropped."""


@runtime_checkable
class SettleMiddleware(Protocol):
    """Told how each delivery of a worker's job was settled."""

    async def settled(self, message: Message, outcome: Outcome) -> None:
        """Called once per delivery, after the broker was told; ``message.attempt`` is the number
        of handler calls made for the job so far. An exception is logged; the job stays settled
        as it was."""
        ...


Middleware: TypeAlias = HandleMiddleware | SendMiddleware | SettleMiddleware
SettleHook: TypeAlias = Callable[[Message, Outcome], Awaitable[None]]


def check(middleware: Sequence[Middleware], where: str = "App") -> tuple[Middleware, ...]:
    """``middleware`` as a tuple; ``ConfigurationError`` for an object that is not a middleware,
    or one that would never run ``where`` it is installed: only ``send`` on a ``"Router"`` or a
    handler (``"subscribe"``, ``"rpc"``, ``"worker"``), only ``settled`` on a handler that is
    not a worker."""
    if isinstance(middleware, str | bytes) or not isinstance(middleware, Sequence):
        raise ConfigurationError(f"middleware={middleware!r}: give a list of middleware objects")
    for item in middleware:
        _check_one(item, where)
    return tuple(middleware)


def _check_one(item: Any, where: str) -> None:
    if not isinstance(item, HandleMiddleware | SendMiddleware | SettleMiddleware):
        raise ConfigurationError(
            f"{item!r} is not a middleware: give an object with an async 'handle(message, "
            "call_next)', 'send(message, call_next)' and/or 'settled(message, outcome)' "
            "method (an instance, not a class)"
        )
    if isinstance(item, type):
        raise ConfigurationError(f"middleware {item.__name__}: pass an instance, not the class")
    if where == "App" or isinstance(item, HandleMiddleware):
        return
    place = "a Router" if where == "Router" else f"a {where} handler"
    name = type(item).__qualname__
    if not isinstance(item, SettleMiddleware):
        raise ConfigurationError(
            f"middleware {name} only has 'send', which never runs on {place}: send middleware "
            "belongs to the App (App(middleware=[...]) or app.use(...)), around every publish, "
            "request and enqueue"
        )
    if where in ("subscribe", "rpc"):
        raise ConfigurationError(
            f"middleware {name} only has 'settled', which never runs on {place}: only workers "
            "settle deliveries; install it on a worker, a Router or the App"
        )


def handle_chain(middleware: Sequence[Middleware], innermost: CallNext) -> CallNext | None:
    """``innermost`` wrapped by every ``handle`` in ``middleware`` (first is outermost); ``None``
    when none of them handles, so the caller keeps its direct path."""
    handlers = [m.handle for m in middleware if isinstance(m, HandleMiddleware)]
    if not handlers:
        return None
    call = innermost
    for handle in reversed(handlers):
        call = _bind(handle, call)
    return call


def send_steps(middleware: Sequence[Middleware]) -> tuple[Callable[..., Awaitable[Any]], ...]:
    """The ``send`` methods of ``middleware``, outermost first."""
    return tuple(m.send for m in middleware if isinstance(m, SendMiddleware))


def settle_hooks(middleware: Sequence[Middleware]) -> tuple[SettleHook, ...]:
    """The ``settled`` methods of ``middleware``, outermost first."""
    return tuple(m.settled for m in middleware if isinstance(m, SettleMiddleware))


async def report_settled(hooks: Sequence[SettleHook], message: Message, outcome: Outcome) -> None:
    """Call every hook; one that raises is logged, and the others still run."""
    for hook in hooks:
        try:
            await hook(message, outcome)
        except Exception:
            log.exception("pigeon: middleware %r failed in settled(%s)", hook, outcome)


def run_send(
    steps: Sequence[Callable[..., Awaitable[Any]]], message: Message, deliver: CallNext
) -> Awaitable[Any]:
    """Pass ``message`` through every send step (at least one), then to ``deliver``. A request
    whose chain returns no reply ``Message`` (a step returned without calling ``call_next``)
    raises ``ConfigurationError``; a publish or enqueue so skipped is not sent. What reaches
    ``deliver`` is checked as the call's own arguments were: a header a step added that pigeon or
    a broker reads as its own, or a subject or queue a step set that pigeon refuses, raises
    ``ConfigurationError`` there (``_checked``)."""
    call = _checked(deliver, message)
    for send in reversed(steps[1:]):
        call = _bind(send, call)
    if message.pattern == "request":
        return _reply_of(steps, message, call)
    return steps[0](message, call)


async def _reply_of(
    steps: Sequence[Callable[..., Awaitable[Any]]], message: Message, call: CallNext
) -> Message:
    reply = await steps[0](message, call)
    if not isinstance(reply, Message):
        raise ConfigurationError(
            f"send middleware returned {reply!r:.60} for a request to "
            f"{message.subject!r} instead of the reply Message: a send middleware must return "
            "what 'await call_next(message)' returned (a request cannot be skipped), or raise"
        )
    return reply


NONE: frozenset[str] = frozenset()


def _checked(deliver: CallNext, message: Message) -> CallNext:
    """``deliver``, after checking the headers of the message the send steps pass on (pigeon's
    own on a request there, ``SENT_BY_PIGEON``, aside) and the subject or queue they passed it
    on under."""
    subject = message.subject

    def check_then_deliver(sent: Message) -> Awaitable[Any]:
        check_user_headers(sent.headers, SENT_BY_PIGEON if sent.pattern == "request" else NONE)
        if sent.subject != subject:
            if sent.pattern == "publish":
                subjects.validate(sent.subject)
            else:  # requests and jobs go to queues on RabbitMQ
                subjects.validate_queue(sent.subject)
        return deliver(sent)

    return check_then_deliver


def _bind(step: Callable[[Message, CallNext], Awaitable[Any]], call_next: CallNext) -> CallNext:
    def call(message: Message) -> Awaitable[Any]:
        return step(message, call_next)

    return call


_DEADLINES: contextvars.ContextVar[tuple[tuple[asyncio.Timeout, float], ...]] = (
    contextvars.ContextVar("pigeon_deadlines", default=())
)
"""The ``Timeout`` scopes around the handler call running in this task, with their seconds."""


def lift_deadlines() -> None:
    """Let the rest of this handler call (its dependencies' cleanup) run past the deadlines of
    the ``Timeout`` middleware around it that have not passed: they bound the call, not the
    cleanup after it."""
    for scope, _ in _DEADLINES.get():
        if not scope.expired():
            scope.reschedule(None)


def expired_timeout() -> float | None:
    """The seconds of a ``Timeout`` around this handler call whose deadline passed, else
    ``None``."""
    return next((seconds for scope, seconds in _DEADLINES.get() if scope.expired()), None)


class Timeout:
    """Cancel a handler call that runs longer than ``seconds`` and fail it with ``TimeoutError``
    (``"worker 'q' exceeded Timeout(0.3s)"``).

    The deadline bounds what is inside this middleware up to the handler's return: the inner
    middleware, decoding, the dependencies' setup and the handler; not the dependencies' cleanup
    after it (a commit after ``yield`` is never cut halfway). The failure is handled like any
    other: a worker's ``Retry``, ``Redeliver`` and dead letters apply, an rpc caller gets
    ``RemoteError`` (type ``TimeoutError``), a subscriber logs it. A sync handler's thread cannot
    be interrupted: its call ends when the thread ends (the message is never handed back while it
    runs); if the handler returned, its result stands; if it raised, its own exception fails the
    call.
    """

    def __init__(self, seconds: float) -> None:
        if not isinstance(seconds, int | float) or seconds <= 0:
            raise ConfigurationError(f"Timeout({seconds!r}): give a positive number of seconds")
        self.seconds = float(seconds)

    def __repr__(self) -> str:
        return f"Timeout({self.seconds:g})"

    async def handle(self, message: Message, call_next: CallNext) -> Any:
        """Await ``call_next(message)`` for at most ``seconds``; raises ``TimeoutError`` after,
        saying what timed out."""
        scope = asyncio.timeout(self.seconds)
        token = _DEADLINES.set((*_DEADLINES.get(), (scope, self.seconds)))
        try:
            async with scope:
                return await call_next(message)
        except TimeoutError as exc:
            if not scope.expired():
                raise
            what = f"{message.pattern} {message.route!r}" if message.route else "handler"
            raise TimeoutError(f"{what} exceeded Timeout({self.seconds:g}s)") from exc
        finally:
            _DEADLINES.reset(token)
