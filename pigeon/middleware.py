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
import enum
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeAlias, runtime_checkable

from pigeon.errors import ConfigurationError
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


def check(middleware: Sequence[Middleware]) -> tuple[Middleware, ...]:
    """``middleware`` as a tuple; ``ConfigurationError`` for an object that is not a middleware."""
    if isinstance(middleware, str | bytes) or not isinstance(middleware, Sequence):
        raise ConfigurationError(f"middleware={middleware!r}: give a list of middleware objects")
    for item in middleware:
        if not isinstance(item, HandleMiddleware | SendMiddleware | SettleMiddleware):
            raise ConfigurationError(
                f"{item!r} is not a middleware: give an object with an async 'handle(message, "
                "call_next)', 'send(message, call_next)' and/or 'settled(message, outcome)' "
                "method (an instance, not a class)"
            )
        if isinstance(item, type):
            raise ConfigurationError(f"middleware {item.__name__}: pass an instance, not the class")
    return tuple(middleware)


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
    """Pass ``message`` through every send step (at least one), then to ``deliver``."""
    call = deliver
    for send in reversed(steps[1:]):
        call = _bind(send, call)
    return steps[0](message, call)


def _bind(step: Callable[[Message, CallNext], Awaitable[Any]], call_next: CallNext) -> CallNext:
    def call(message: Message) -> Awaitable[Any]:
        return step(message, call_next)

    return call


class Timeout:
    """Cancel a handler call that runs longer than ``seconds`` and fail it with ``TimeoutError``.

    The failure is handled like any other: a worker's ``Retry``, ``Redeliver`` and dead letters
    apply, an rpc caller gets ``RemoteError`` (type ``TimeoutError``), a subscriber logs it. A sync
    handler's thread cannot be stopped: its call fails on time, the thread runs to its end.
    """

    def __init__(self, seconds: float) -> None:
        if not isinstance(seconds, int | float) or seconds <= 0:
            raise ConfigurationError(f"Timeout({seconds!r}): give a positive number of seconds")
        self.seconds = float(seconds)

    def __repr__(self) -> str:
        return f"Timeout({self.seconds:g})"

    async def handle(self, message: Message, call_next: CallNext) -> Any:
        """Await ``call_next(message)`` for at most ``seconds``; raises ``TimeoutError`` after."""
        async with asyncio.timeout(self.seconds):
            return await call_next(message)
