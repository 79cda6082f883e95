"""Lifespans: what an App and its routers open before the first handler starts, and close after
the last one drained.

An App enters its own lifespan first, then its routers', in the order it included them (a router's
own before those of the routers it included); it leaves them in the reverse order. The App's
lifespan may yield a mapping of names to values, each set on ``app.state``, or any other object,
which becomes ``app.state``; a router's lifespan shares ``app.state`` with the others, so it yields
``None`` (having set attributes itself) or such a mapping. A name is set once per start: a clash
with one set already is a ``ConfigurationError``. ``app.state`` stays readable after close; the
next start first undoes what the previous one put there.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any

from pigeon.errors import ConfigurationError

log = logging.getLogger("pigeon")

LifespanFactory = Callable[[Any], AbstractAsyncContextManager[Any]]
"""Called with the App, returns the async context manager to enter: an ``asynccontextmanager``."""


def factory(fn: Callable[..., Any]) -> LifespanFactory:
    """``fn`` as a lifespan factory: an async generator function taking the App, or a function
    returning an async context manager. Raises ``ConfigurationError`` for anything else that can
    be told apart before it is called (a sync generator, an ``async def`` without ``yield``)."""
    if inspect.isasyncgenfunction(fn):
        return contextlib.asynccontextmanager(fn)
    name = getattr(fn, "__qualname__", repr(fn))
    if inspect.isgeneratorfunction(fn) or inspect.iscoroutinefunction(fn):
        kind = "generator" if inspect.isgeneratorfunction(fn) else "coroutine"
        raise ConfigurationError(
            f"lifespan {name} is a {kind} function: write an async generator function, 'async "
            "def lifespan(app): ...; yield; ...' (or a function returning an async context "
            "manager)"
        )
    if callable(fn):
        return fn
    raise ConfigurationError(f"lifespan {fn!r}: decorate an async generator function")


Undo = Callable[[], None]
"""Puts ``app.state`` back as it was before the lifespans were entered."""


async def enter(
    app: Any, own: LifespanFactory | None, included: Sequence[LifespanFactory]
) -> tuple[AsyncExitStack, Undo]:
    """Enter ``own`` (the App's), then ``included`` (its routers'), in order; returns the stack
    whose ``aclose()`` leaves them in reverse, and how to undo what they put on ``app.state``
    (for the next start; ``app.state`` stays readable after close). A failure entering one
    leaves those entered and raises it, even if one of them swallowed it at its ``yield``. A
    mapping yielded is set on ``app.state`` name by name (``ConfigurationError`` for a name set
    already or not an identifier); any other object the App's lifespan yields becomes
    ``app.state``; a router's must yield ``None`` or a mapping."""
    before, provided = app.state, set[str]()
    failure: BaseException | None = None
    async with AsyncExitStack() as stack:
        try:
            if own is not None:
                value = await stack.enter_async_context(_opened(own, app))
                if value is not None and not isinstance(value, Mapping):
                    app.state = value
                else:
                    _provide(app.state, value, own, provided, router=False)
            for lifespan in included:
                value = await stack.enter_async_context(_opened(lifespan, app))
                _provide(app.state, value, lifespan, provided, router=True)
            return stack.pop_all(), functools.partial(_undo, app, before, provided)
        except BaseException as exc:
            failure = exc
            raise
    assert failure is not None  # a lifespan swallowed it at its yield: the start still fails
    raise failure


async def leave(stack: AsyncExitStack, warn_after: float) -> None:
    """Leave the lifespans entered on ``stack`` (the code after each ``yield``), however long
    that takes, with a WARNING once it has run ``warn_after`` seconds: a teardown that hangs
    (a pool whose close never returns) is then named in the log, rather than a close that
    seems stuck after its handlers drained. It is not cancelled: what it closes may still be
    writing. A second SIGINT or SIGTERM to ``pigeon run`` exits at once, as ever."""
    leaving = asyncio.ensure_future(stack.aclose())
    try:
        done, _ = await asyncio.wait({leaving}, timeout=warn_after)
        if not done:
            log.warning(
                "pigeon: the lifespans' teardown (the code after their yield) still runs %gs "
                "after it began; waiting for it (a second SIGINT or SIGTERM stops at once)",
                warn_after,
            )
        await leaving
    except asyncio.CancelledError:
        leaving.cancel()
        raise


def _opened(lifespan: LifespanFactory, app: Any) -> AbstractAsyncContextManager[Any]:
    manager = lifespan(app)
    if not hasattr(manager, "__aenter__") or not hasattr(manager, "__aexit__"):
        raise ConfigurationError(
            f"lifespan {_name(lifespan)} returned {type(manager).__name__}, not an async context "
            "manager: write an async generator function taking the App"
        )
    return manager


def _undo(app: Any, before: Any, provided: set[str]) -> None:
    app.state = before
    for name in provided:
        with contextlib.suppress(AttributeError):
            delattr(before, name)


def _provide(
    state: Any, value: Any, lifespan: LifespanFactory, provided: set[str], *, router: bool
) -> None:
    """Set each item of the mapping ``value`` a ``lifespan`` yielded on ``state``."""
    if value is None:
        return
    name = f"{'router ' if router else ''}lifespan {_name(lifespan)}"
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise ConfigurationError(
            f"{name} yielded {type(value).__name__}: yield None, or a mapping of "
            "names to values to set on app.state"
        )
    for key in value:
        _check_name(state, key, name, provided)
    provided.update(value)
    for key, item in value.items():
        try:
            setattr(state, key, item)
        except AttributeError as error:
            raise ConfigurationError(
                f"{name} cannot set app.state.{key} on the "
                f"{type(state).__name__} the App's lifespan yielded: yield a mutable object"
            ) from error


def _check_name(state: Any, key: str, name: str, provided: set[str]) -> None:
    if not key.isidentifier() or key.startswith("__"):
        raise ConfigurationError(
            f"{name} yielded the name {key!r}: app.state names must be identifiers, not "
            "starting with '__'"
        )
    if key in provided:
        raise ConfigurationError(
            f"{name} provides app.state.{key}, which another router's lifespan (or the App's) "
            "provides already: rename one"
        )
    if hasattr(state, key):
        raise ConfigurationError(
            f"{name} provides app.state.{key}, but app.state.{key} is set already (by the App's "
            "lifespan, or before start): rename one"
        )


def _name(lifespan: Any) -> str:
    return getattr(lifespan, "__qualname__", None) or repr(lifespan)
