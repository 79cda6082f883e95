"""Lifespans: what an App and its routers open before the first handler starts, and close after
the last one drained.

An App enters its own lifespan first, then its routers', in the order it included them (a router's
own before those of the routers it included); it leaves them in the reverse order. The App's
lifespan may yield any object, which becomes ``app.state``; a router's lifespan shares
``app.state`` with the others, so it yields ``None`` (having set attributes itself) or a mapping of
names to values, each set on ``app.state``.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any

from pigeon.errors import ConfigurationError

LifespanFactory = Callable[[Any], AbstractAsyncContextManager[Any]]
"""Called with the App, returns the async context manager to enter: an ``asynccontextmanager``."""


def factory(fn: Callable[..., Any]) -> LifespanFactory:
    """``fn`` as a lifespan factory: an async generator function taking the App, or a function
    returning an async context manager. Raises ``ConfigurationError`` for anything else."""
    if inspect.isasyncgenfunction(fn):
        return contextlib.asynccontextmanager(fn)
    if callable(fn):
        return fn
    raise ConfigurationError(f"lifespan {fn!r}: decorate an async generator function")


async def enter(
    app: Any, own: LifespanFactory | None, included: Sequence[LifespanFactory]
) -> AsyncExitStack:
    """Enter ``own`` (the App's), then ``included`` (its routers'), in order; returns the stack
    whose ``aclose()`` leaves them in reverse. A failure entering one leaves those entered and
    raises it; a router lifespan yielding neither ``None`` nor a mapping of new names raises
    ``ConfigurationError``."""
    async with AsyncExitStack() as stack:
        if own is not None:
            value = await stack.enter_async_context(own(app))
            if value is not None:
                app.state = value
        provided: set[str] = set()
        for lifespan in included:
            value = await stack.enter_async_context(lifespan(app))
            _provide(app.state, value, lifespan, provided)
        return stack.pop_all()


def _provide(state: Any, value: Any, lifespan: LifespanFactory, provided: set[str]) -> None:
    """Set each item of the mapping ``value`` a router's ``lifespan`` yielded on ``state``."""
    if value is None:
        return
    name = getattr(lifespan, "__qualname__", repr(lifespan))
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise ConfigurationError(
            f"router lifespan {name} yielded {type(value).__name__}: yield None, or a mapping of "
            "names to values to set on app.state"
        )
    clash = provided.intersection(value)
    if clash:
        raise ConfigurationError(
            f"router lifespan {name} provides app.state.{min(clash)}, which another router's "
            "lifespan provides already: rename one"
        )
    provided.update(value)
    for key, item in value.items():
        try:
            setattr(state, key, item)
        except AttributeError as error:
            raise ConfigurationError(
                f"router lifespan {name} cannot set app.state.{key} on the "
                f"{type(state).__name__} the App's lifespan yielded: yield a mutable object"
            ) from error
