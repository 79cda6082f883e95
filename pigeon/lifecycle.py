"""An App's life: ``start``, ``close``, ``async with`` and ``run``, with the rules for calls that
meet (a close during a start, a close from one of the App's own handlers, a cancelled close)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from pigeon import closing
from pigeon.deduplicate import scope_of, scoped
from pigeon.errors import ConfigurationError
from pigeon.lifespan import enter as enter_lifespans
from pigeon.lifespan import leave as leave_lifespans
from pigeon.patterns.serving import Startable
from pigeon.transports.base import Subscription, Transport

if TYPE_CHECKING:
    from pigeon.app import App
    from pigeon.lifespan import LifespanFactory
    from pigeon.middleware import Middleware
    from pigeon.routing import Routes

RESTART_INSIDE = (
    "start() in one of the App's own handlers while the App closes would wait for itself (the "
    "close waits for that handler); start it again from outside, e.g. once run() returned"
)


class Lifecycle:
    """``App``'s lifecycle methods (see each). A close runs in a task of its own, which a
    caller awaits shielded: cancelling the caller (``asyncio.timeout`` around ``close()``) never
    leaves the App half-closed, and every ``close()`` meanwhile waits for that one."""

    transport: Transport
    middleware: tuple[Middleware, ...]
    shutdown_timeout: float
    ready: bool
    _routes: Routes
    _handlers: list[Startable]
    _subscriptions: list[Subscription]
    _instance: str
    _lifespan: LifespanFactory | None
    _included_lifespans: list[LifespanFactory]
    _lifespan_exit: contextlib.AsyncExitStack | None
    _undo_state: Callable[[], None] | None

    def _init_lifecycle(self) -> None:
        self._running = False
        self._with_blocks, self._started_by_with = 0, False  # see __aenter__
        self._stop_requested: asyncio.Event | None = None
        self._closing: asyncio.Task[None] | None = None  # see close
        self._starting: asyncio.Future[None] | None = None  # see start
        self.ready = False

    async def start(self) -> None:
        """Connect, enter the lifespans (the App's, then its routers') and start every handler;
        returns once all of them receive messages. Raises what a lifespan raised on entering,
        after leaving those entered and disconnecting. During a close, waits for it first
        (``ConfigurationError`` in one of the App's own handlers: see ``RESTART_INSIDE``)."""
        if self._closing is not None:
            if closing.inside(self):
                raise ConfigurationError(RESTART_INSIDE)
            await asyncio.shield(self._closing)
        if self._running or self._starting is not None:
            return
        started = self._starting = asyncio.get_running_loop().create_future()
        try:
            await self._start()
        except BaseException:
            self._started(started)
            await self._begin_close(ends_run=False)  # run() reports what the start raised
            raise
        finally:
            self._started(started)

    def _started(self, started: asyncio.Future[None]) -> None:
        if not started.done():
            started.set_result(None)
        if self._starting is started:
            self._starting = None

    async def _start(self) -> None:
        with closing.serving(self):  # its tasks are the App's (see pigeon.closing)
            await self.transport.connect()
        self._running = True
        await self._enter_lifespan()
        with closing.serving(self):
            for route, handler in zip(self._routes, self._handlers, strict=True):
                scope = scope_of(route, self._instance)
                middleware = scoped((*self.middleware, *handler.middleware), scope)
                if middleware != handler.middleware:
                    handler = replace(handler, middleware=middleware)
                self._subscriptions.append(await handler.start(self.transport))
        self.ready = True

    async def _enter_lifespan(self) -> None:
        if self._undo_state is not None:  # what the previous start put on app.state
            self._undo_state()
        own, included = self._lifespan, self._included_lifespans
        self._lifespan_exit, self._undo_state = await enter_lifespans(self, own, included)

    async def close(self) -> None:
        """Stop taking messages, wait up to ``shutdown_timeout`` for handlers in flight, hand the
        rest back to the broker unacked, and disconnect; ``run()`` returns. Idempotent. During a
        start (from another task), waits for it to end first. Awaited in one of the App's own
        handlers, it starts the close and returns at once: the close then waits for that
        handler to return, as for the others (``pigeon.closing``)."""
        await self._begin_close(ends_run=True)

    async def _begin_close(self, *, ends_run: bool) -> None:
        if self._closing is None:
            if not (self._running or self._starting is not None):
                return
            closes = None if self._starting is not None else self._stop_taking(ends_run)
            inside = closing.inside(self)
            close = self._close(closes, ends_run)
            self._closing = closing.in_background(close, unawaited=inside)
        if not closing.inside(self):
            await asyncio.shield(self._closing)

    def _stop_taking(self, ends_run: bool) -> list[asyncio.Future[None]]:
        """At the call: mark the App closed (``ends_run``: and ask ``run()`` to return), and
        begin closing its subscriptions (each stops taking messages at its first step)."""
        if ends_run:
            self.stop()
        self._running = self.ready = self._started_by_with = False
        subscriptions, self._subscriptions = self._subscriptions, []
        return [asyncio.ensure_future(s.close(self.shutdown_timeout)) for s in subscriptions]

    async def _close(self, closes: list[asyncio.Future[None]] | None, ends_run: bool) -> None:
        """``closes``: the subscriptions' closes begun at the call; ``None`` if a start was
        under way (it ends first, then what it began is closed)."""
        try:
            if closes is None:
                if self._starting is not None:
                    await asyncio.shield(self._starting)
                closes = self._stop_taking(ends_run)
            await asyncio.gather(*closes)
            lifespan, self._lifespan_exit = self._lifespan_exit, None
            try:
                if lifespan is not None:
                    await leave_lifespans(lifespan, max(self.shutdown_timeout, 1.0))
            finally:
                await self.transport.close()
        finally:
            self._closing = None

    @property
    def stopping(self) -> bool:
        """Whether ``run()`` was asked to stop (a second SIGINT or SIGTERM then exits at once)."""
        return self._stop_requested is not None and self._stop_requested.is_set()

    async def __aenter__(self) -> Self:
        """``start``; entered again while running (a test harness and a web framework's lifespan
        around one App), it only counts: the App closes when the block that started it and every
        block entered since are left, never at the end of a block if ``start()`` started it."""
        if not self._running:
            await self.start()
            self._started_by_with = True
        self._with_blocks += 1
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._with_blocks -= 1
        if self._with_blocks == 0 and self._started_by_with:
            await self.close()

    async def run(self) -> None:
        """Serve until SIGINT or SIGTERM (or ``stop()``, or a ``close()``), then close
        gracefully. A signal while starting (a lifespan or the broker slow to answer) cancels the
        start, and ``run`` returns once what was entered is left. Once stopping, a second signal
        exits at once."""
        from pigeon.running import run_until_stopped  # here: running imports App

        self._stop_requested = asyncio.Event()
        app: Any = self
        await run_until_stopped(app, self._stop_requested)

    def stop(self) -> None:
        """Ask a running ``run()`` to close gracefully."""
        if self._stop_requested is not None:
            self._stop_requested.set()


if TYPE_CHECKING:
    _app: type[Lifecycle] = App
