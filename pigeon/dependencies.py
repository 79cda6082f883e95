"""Dependencies: ``Annotated[T, Depends(fn)]`` parameters, resolved per message from a graph built
once, when the handler is decorated.

A dependency is a function (sync or async) or a generator (sync or async) whose code after
``yield`` runs once the handler returned or raised (the handler's exception is thrown in at the
``yield``). Its parameters are filled the same way: ``Message`` (the message being handled),
``App`` (the App serving it, e.g. for ``app.state``), other dependencies, or a default. Within one
message a dependency used twice is called once. Sync dependencies run on the event loop: keep
them quick (an async dependency or a sync handler may block instead).
"""

from __future__ import annotations

import enum
import inspect
import typing
from collections.abc import Callable
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

from pigeon.errors import ConfigurationError
from pigeon.message import Message


class Depends:
    """Marks a parameter ``Annotated[T, Depends(fn)]``: pigeon calls ``fn`` per message and passes
    its result (for a generator, what it yields) as the parameter's value."""

    __slots__ = ("dependency",)

    def __init__(self, dependency: Callable[..., Any]) -> None:
        if not callable(dependency):
            raise ConfigurationError(f"Depends({dependency!r}): give a function or a class")
        self.dependency = dependency

    def __repr__(self) -> str:
        return f"Depends({getattr(self.dependency, '__qualname__', self.dependency)!r})"


def depends_of(annotation: Any) -> Depends | None:
    """The ``Depends`` in an ``Annotated[...]`` annotation, else ``None``."""
    if typing.get_origin(annotation) is not typing.Annotated:
        return None
    found = [m for m in annotation.__metadata__ if isinstance(m, Depends)]
    return found[-1] if found else None


class _Kind(enum.Enum):
    CALL = "call"
    AWAIT = "await"
    GENERATOR = "generator"
    ASYNC_GENERATOR = "async generator"


MESSAGE, APP = -1, -2
"""Sources of an argument that are not another dependency's result."""


@dataclass(frozen=True, slots=True)
class _Step:
    fn: Callable[..., Any]
    kind: _Kind
    args: tuple[tuple[str, int], ...]
    """(parameter name, source): ``MESSAGE``, ``APP``, or the index of an earlier step."""


@dataclass(frozen=True, slots=True)
class Dependencies:
    """The dependencies of one handler, in an order where each comes after what it needs."""

    steps: tuple[_Step, ...]
    params: tuple[tuple[str, int], ...]
    """(handler parameter name, index of the step that fills it)."""
    needs_cleanup: bool
    needs_message: bool
    all_sync: bool
    """Every dependency is a plain function: ``resolve_now`` applies, without awaiting."""

    def resolve_now(self, message: Message | None, app: Any) -> dict[str, Any]:
        """``resolve`` for graphs of plain functions only (``all_sync``)."""
        values: list[Any] = []
        for step in self.steps:
            kwargs = {
                name: values[i] if i >= 0 else (message if i == MESSAGE else app)
                for name, i in step.args
            }
            values.append(step.fn(**kwargs))
        return {name: values[i] for name, i in self.params}

    async def resolve(
        self, message: Message | None, app: Any, stack: AsyncExitStack | None
    ) -> dict[str, Any]:
        """The handler's dependency arguments for ``message``; generators are entered on
        ``stack`` (required when ``needs_cleanup``). Raises what a dependency raises."""
        values: list[Any] = []
        for step in self.steps:
            kwargs = {
                name: values[i] if i >= 0 else (message if i == MESSAGE else app)
                for name, i in step.args
            }
            if step.kind is _Kind.CALL:
                values.append(step.fn(**kwargs))
            elif step.kind is _Kind.AWAIT:
                values.append(await step.fn(**kwargs))
            elif step.kind is _Kind.ASYNC_GENERATOR:
                assert stack is not None
                values.append(
                    await stack.enter_async_context(asynccontextmanager(step.fn)(**kwargs))
                )
            else:
                assert stack is not None
                values.append(stack.enter_context(contextmanager(step.fn)(**kwargs)))
        return {name: values[i] for name, i in self.params}


def build(handler: str, params: dict[str, Depends]) -> Dependencies | None:
    """The graph of ``params`` (handler parameter name -> its ``Depends``); ``None`` if empty.

    Raises ``ConfigurationError`` for a dependency parameter without annotation or default, or
    for a cycle, naming the function and parameter.
    """
    if not params:
        return None
    builder = _Builder(handler)
    named = tuple((name, builder.add(dep.dependency)) for name, dep in params.items())
    steps = tuple(builder.steps)
    return Dependencies(
        steps=steps,
        params=named,
        needs_cleanup=any(s.kind in (_Kind.GENERATOR, _Kind.ASYNC_GENERATOR) for s in steps),
        needs_message=any(i == MESSAGE for s in steps for _, i in s.args),
        all_sync=all(s.kind is _Kind.CALL for s in steps),
    )


class _Builder:
    def __init__(self, handler: str) -> None:
        self.handler = handler
        self.steps: list[_Step] = []
        self.index: dict[Callable[..., Any], int] = {}
        self.visiting: list[Callable[..., Any]] = []

    def add(self, fn: Callable[..., Any]) -> int:
        if fn in self.index:
            return self.index[fn]
        if fn in self.visiting:
            cycle = " -> ".join(_name(f) for f in [*self.visiting[self.visiting.index(fn) :], fn])
            raise ConfigurationError(f"handler {self.handler}: dependency cycle {cycle}")
        self.visiting.append(fn)
        args = self._arguments(fn)
        self.visiting.pop()
        self.steps.append(_Step(fn, _kind(fn), args))
        self.index[fn] = len(self.steps) - 1
        return self.index[fn]

    def _arguments(self, fn: Callable[..., Any]) -> tuple[tuple[str, int], ...]:
        from pigeon.app import App  # the App is a source; imported here to avoid a cycle

        hints = _hints(self.handler, fn)
        args = []
        for param in inspect.signature(fn).parameters.values():
            if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                continue
            annotation = hints.get(param.name, param.annotation)
            depends = depends_of(annotation)
            plain = typing.get_args(annotation)[0] if depends is not None else annotation
            if depends is not None:
                args.append((param.name, self.add(depends.dependency)))
            elif isinstance(plain, type) and issubclass(plain, Message):
                args.append((param.name, MESSAGE))
            elif isinstance(plain, type) and issubclass(plain, App):
                args.append((param.name, APP))
            elif param.default is inspect.Parameter.empty:
                raise ConfigurationError(
                    f"handler {self.handler}: parameter {param.name!r} of dependency "
                    f"{_name(fn)} cannot be filled; annotate it 'Message', 'App' or "
                    "'Annotated[T, Depends(fn)]', or give it a default"
                )
        return tuple(args)


def _hints(handler: str, fn: Callable[..., Any]) -> dict[str, Any]:
    target = fn.__init__ if inspect.isclass(fn) else fn
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception as exc:  # a forward reference that does not resolve, say
        raise ConfigurationError(
            f"handler {handler}: cannot resolve the annotations of dependency {_name(fn)}: {exc}"
        ) from exc


def _kind(fn: Callable[..., Any]) -> _Kind:
    if inspect.isasyncgenfunction(fn):
        return _Kind.ASYNC_GENERATOR
    if inspect.isgeneratorfunction(fn):
        return _Kind.GENERATOR
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object whose __call__ is async
    ):
        return _Kind.AWAIT
    return _Kind.CALL


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", repr(fn))
