"""A user's handler function, inspected once at decoration time and called per message."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import typing
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Literal

from pigeon.codecs import JSON, Decoder, JSONCodec, decoder_for
from pigeon.dependencies import Dependencies, Depends, depends_of
from pigeon.dependencies import build as build_dependencies
from pigeon.errors import ConfigurationError
from pigeon.message import Envelope, Message
from pigeon.middleware import expired_timeout, lift_deadlines

Runs = Literal["coroutine", "loop", "thread"]

THREAD_LOG_EVERY = 5.0
"""Seconds between log lines while a cancelled sync handler's thread keeps running."""

log = logging.getLogger("pigeon")


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    """How to decode for, and call, one handler function."""

    fn: Callable[..., Any]
    name: str
    body_type: Any
    decode: Decoder
    message_param: str | None
    runs: Runs
    """How a call runs: ``"coroutine"`` (an ``async def``: its coroutine is returned as it is),
    ``"loop"`` (called on the event loop, whatever it returns awaited if awaitable) or
    ``"thread"`` (a sync function, called in a worker thread; an awaitable it returns is then
    awaited on the loop)."""
    dependencies: Dependencies | None = None
    app: Any = None
    """The App serving the handler, for dependencies that ask for it; set when it is added."""
    plain: bool = field(init=False, default=False, repr=False, compare=False)
    """An ``async def`` taking the body alone: a call is ``fn(body)``, which patterns make
    without going through ``call`` (the common case, once per message)."""

    def __post_init__(self) -> None:
        plain = self.runs == "coroutine" and self.message_param is None
        object.__setattr__(self, "plain", plain and self.dependencies is None)

    def decode_body(self, envelope: Envelope) -> Any:
        """The body decoded into the handler's type; raises ``DecodeError``."""
        return self.decode(envelope.body, envelope.content_type, envelope.headers)

    def call(self, body: Any, envelope: Envelope, subject: str, attempt: int = 1) -> Awaitable[Any]:
        """Call the handler with ``body`` (and its ``Message`` and dependencies if it asked for
        them); await the result. A sync handler runs in a worker thread."""
        if self.plain:
            return self.fn(body)  # type: ignore[no-any-return]
        dependencies = self.dependencies
        if self.message_param is None:
            if dependencies is None:
                return self._invoke(body, {})
            if not dependencies.needs_message:
                return self.call_with(body, None)
        return self.call_with(body, Message.of(envelope, subject, attempt))

    def call_message(self, message: Message) -> Awaitable[Any]:
        """Decode ``message`` and call the handler with it: the innermost step of middleware."""
        body = self.decode(message.body, message.content_type, message.headers)
        if self.plain:
            return self.fn(body)  # type: ignore[no-any-return]
        if self.message_param is None and self.dependencies is None:
            return self._invoke(body, {})
        return self.call_with(body, message)

    def call_with(self, body: Any, message: Message | None) -> Awaitable[Any]:
        """Call the handler with ``body``, ``message`` for its ``Message`` parameter and its
        dependencies resolved for ``message``."""
        kwargs = {self.message_param: message} if self.message_param else {}
        if self.dependencies is None:
            return self._invoke(body, kwargs)
        if self.dependencies.all_sync:  # no coroutine of its own: cheaper per message
            kwargs.update(self.dependencies.resolve_now(message, self.app))
            return self._invoke(body, kwargs)
        return self._call_resolved(body, message, kwargs)

    def _invoke(self, body: Any, kwargs: dict[str, Any]) -> Awaitable[Any]:
        if self.runs == "coroutine":
            return self.fn(body, **kwargs)  # type: ignore[no-any-return]
        if self.runs == "loop":
            return _in_loop(self.fn, body, kwargs)
        return _in_thread(self.fn, body, kwargs, self.app)

    async def _call_resolved(
        self, body: Any, message: Message | None, kwargs: dict[str, Any]
    ) -> Any:
        dependencies = self.dependencies
        assert dependencies is not None
        if not dependencies.needs_cleanup:
            kwargs.update(await dependencies.resolve(message, self.app, None))
            return await self._invoke(body, kwargs)
        failure: BaseException | None = None
        async with AsyncExitStack() as stack:
            try:
                kwargs.update(await dependencies.resolve(message, self.app, stack))
                return await self._invoke(body, kwargs)
            except BaseException as exc:
                failure = exc
                raise
            finally:
                lift_deadlines()  # Timeout bounds the call, not the cleanup after it
        # Only reached when a generator dependency swallowed ``failure`` at its yield: cleanup
        # cannot turn a failed (or cancelled) call into a success.
        assert failure is not None
        log.error(
            "pigeon: a dependency of handler %s swallowed its %s; the call fails with it anyway "
            "(re-raise in the dependency's except, or clean up in a finally)",
            self.name,
            type(failure).__name__,
        )
        raise failure


async def _in_loop(fn: Callable[..., Any], body: Any, kwargs: dict[str, Any]) -> Any:
    result = fn(body, **kwargs)
    return await result if inspect.isawaitable(result) else result


async def _in_thread(
    fn: Callable[..., Any], body: Any, kwargs: dict[str, Any], app: Any = None
) -> Any:
    thread = asyncio.ensure_future(asyncio.to_thread(fn, body, **kwargs))
    try:
        result = await asyncio.shield(thread)
    except asyncio.CancelledError:
        result = await _outlive(thread, getattr(fn, "__qualname__", repr(fn)), app)
    return await result if inspect.isawaitable(result) else result


async def _outlive(thread: asyncio.Future[Any], name: str, app: Any = None) -> Any:
    """The result of a sync handler's ``thread`` whose call was cancelled (``shutdown_timeout``
    ended, a ``Timeout``): a thread cannot be interrupted, so wait for it, logging every
    ``THREAD_LOG_EVERY`` seconds, lest its message be handed back while it runs. If the handler
    returned, the cancellation is withdrawn and its result stands (the job is acked, done once).
    If it raised: after a ``Timeout`` (and nothing else cancelled the call) its own exception
    fails the call; else the cancellation goes on (``CancelledError``)."""
    timeout = expired_timeout()
    task, cancels, waited = asyncio.current_task(), 1, 0.0
    stopping = app is not None and getattr(app, "stopping", False)
    log.warning(
        "pigeon: sync handler %s %s; a thread cannot be interrupted: waiting for it to end%s",
        name,
        "was cancelled" if timeout is None else f"exceeded Timeout({timeout:g}s)",
        " (a second SIGINT or SIGTERM exits at once)" if stopping else "",
    )
    while not thread.done():
        try:
            await asyncio.wait({thread}, timeout=THREAD_LOG_EVERY)
        except asyncio.CancelledError:
            cancels += 1
            continue
        if not thread.done():
            waited += THREAD_LOG_EVERY
            log.warning("pigeon: sync handler %s still running, %gs past its cancel", name, waited)
    if thread.cancelled():
        raise asyncio.CancelledError
    error = thread.exception()
    if error is not None and timeout is not None and cancels == 1:
        error.add_note(f"raised by sync handler {name} after it exceeded Timeout({timeout:g}s)")
        raise error
    if error is not None:
        raise asyncio.CancelledError
    if task is not None:
        for _ in range(cancels):
            task.uncancel()
    return thread.result()


def inspect_handler(fn: Callable[..., Any], json: JSONCodec = JSON) -> HandlerSpec:
    """Read ``fn``'s signature and build its decoder; ``ConfigurationError`` saying how to fix it.

    The first parameter receives the body and must be annotated with its type (a dependency,
    ``Message`` or ``App`` there is refused: there are no body-less handlers); one more parameter
    annotated ``Message`` may follow, and parameters annotated ``Annotated[T, Depends(fn)]``; any
    other parameter needs a default. The dependency graph is built here (``pigeon.dependencies``).
    """
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    runs = _runs(fn, name)
    params = list(inspect.signature(fn).parameters.values())
    try:
        hints = typing.get_type_hints(_annotated(fn))
    except Exception as exc:  # a forward reference that does not resolve, say
        raise ConfigurationError(
            f"handler {name}: cannot resolve its annotations: {exc} (names in annotations must "
            "be importable from the handler's module: define the models and dependencies they "
            "name at module level, or drop 'from __future__ import annotations')"
        ) from exc
    if not params or params[0].kind not in _POSITIONAL:
        raise ConfigurationError(
            f"handler {name} takes no body parameter; add one annotated with the message type, "
            "e.g. 'async def handle(order: Order) -> None'"
        )
    body = params[0]
    _check_body(fn, name, body, hints)
    body_type = _body_type(fn, body.name)
    depends = _depends_params(fn, params[1:])
    rest = [p for p in params[1:] if p.name not in depends]
    return HandlerSpec(
        fn=fn,
        name=name,
        body_type=body_type,
        decode=decoder_for(body_type, json),
        message_param=_message_param(name, rest, hints),
        runs=runs,
        dependencies=build_dependencies(name, depends),
    )


def return_type(spec: HandlerSpec) -> Any:
    """The handler's return annotation, ``Any`` if it has none."""
    return typing.get_type_hints(_annotated(spec.fn)).get("return", Any)


def _layers(fn: Callable[..., Any]) -> list[Any]:
    """``fn`` and what it stands for: the functions it wraps (``functools.wraps``), a partial's
    function, an object's ``__call__``."""
    layers: list[Any] = []
    current: Any = fn
    while current is not None and all(current is not seen for seen in layers):
        layers.append(current)
        if isinstance(current, functools.partial):
            current = current.func
        elif hasattr(current, "__wrapped__"):
            current = current.__wrapped__
        elif not inspect.isroutine(current) and not inspect.isclass(current):
            current = getattr(current, "__call__", None)  # noqa: B004 - a callable object
        else:
            current = None
    return layers


def _runs(fn: Callable[..., Any], name: str) -> Runs:
    """How ``fn`` is called; ``ConfigurationError`` if it never can be called correctly."""
    if not callable(fn):
        raise ConfigurationError(
            f"{name!r} is not callable; decorate a function ('async def' or 'def')"
        )
    layers = _layers(fn)
    if any(inspect.isasyncgenfunction(f) or inspect.isgeneratorfunction(f) for f in layers):
        raise ConfigurationError(
            f"handler {name} is a generator function: pigeon calls a handler once per message "
            "and uses what it returns; write an 'async def' (or 'def') that returns its result "
            "instead of yielding it"
        )
    if inspect.iscoroutinefunction(fn):
        return "coroutine"
    if any(inspect.iscoroutinefunction(f) or _marked_async(f) for f in layers):
        return "loop"
    return "thread"


def _marked_async(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` is a plain function marked as returning a coroutine the way Python 3.11
    marks one (``App.publish``, see ``pubsub.coroutine_function``): run on the loop, not in a
    thread."""
    return getattr(fn, "_is_coroutine", None) is getattr(asyncio.coroutines, "_is_coroutine", 0)


def _annotated(fn: Callable[..., Any]) -> Any:
    """What carries ``fn``'s annotations: itself, or a partial's function or an object's
    ``__call__`` (``typing.get_type_hints`` follows ``functools.wraps`` by itself).

    Annotations travel outwards only along functions: ``functools.wraps`` around a partial or a
    callable object copies none, so the wrapper's own (``*args, **kwargs``) would be read. The
    first function or class inside the innermost partial or object carries them."""
    layers = _layers(fn)
    plain = [i for i, layer in enumerate(layers) if not _is_function_or_class(layer)]
    for layer in layers[plain[-1] + 1 if plain else 0 :]:
        if _is_function_or_class(layer):
            return layer
    return fn


def _is_function_or_class(layer: Any) -> bool:
    return inspect.isroutine(layer) or inspect.isclass(layer)


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _check_body(
    fn: Callable[..., Any], name: str, body: inspect.Parameter, hints: dict[str, Any]
) -> None:
    """``ConfigurationError`` unless ``body``, the first parameter, can take the message body:
    annotated, and neither a dependency, ``Message`` nor ``App`` (those are filled by pigeon, so a
    handler without a body parameter would get the body in one of them)."""
    from pigeon.app import App  # here: app imports this module

    annotation = typing.get_type_hints(_annotated(fn), include_extras=True).get(body.name)
    if depends_of(annotation) is not None:
        raise ConfigurationError(
            f"handler {name}: its first parameter {body.name!r} is a dependency, but the first "
            "parameter receives the message body: add a body parameter first, annotated with the "
            "message type (e.g. 'async def handle(order: Order, conn: Annotated[...]) -> None')"
        )
    hint = hints.get(body.name)
    if isinstance(hint, type) and issubclass(hint, Message | App):
        raise ConfigurationError(
            f"handler {name}: its first parameter {body.name!r} is annotated {hint.__name__}, but "
            "the first parameter receives the message body: add a body parameter first, annotated "
            "with the message type (bytes if the handler ignores it)"
        )
    if hint is None:
        raise ConfigurationError(
            f"handler {name}: annotate its first parameter {body.name!r} with the message type "
            "(a pydantic model, dataclass, bytes, str or dict): it decides how bodies are decoded"
        )


def _body_type(fn: Callable[..., Any], body: str) -> Any:
    """The body parameter's annotation with its ``Annotated`` metadata kept: pydantic checks
    constraints such as ``Annotated[int, Field(gt=0)]`` on every message, as FastAPI does."""
    return typing.get_type_hints(_annotated(fn), include_extras=True)[body]


def _depends_params(fn: Callable[..., Any], rest: list[inspect.Parameter]) -> dict[str, Depends]:
    if not rest:
        return {}
    hints = typing.get_type_hints(_annotated(fn), include_extras=True)
    found = {p.name: depends_of(hints.get(p.name)) for p in rest}
    return {name: depends for name, depends in found.items() if depends is not None}


def _message_param(name: str, rest: list[inspect.Parameter], hints: dict[str, Any]) -> str | None:
    found = None
    for param in rest:
        if hints.get(param.name) is Message and found is None:
            found = param.name
        elif param.default is inspect.Parameter.empty and param.kind in (
            *_POSITIONAL,
            inspect.Parameter.KEYWORD_ONLY,
        ):
            raise ConfigurationError(
                f"handler {name}: parameter {param.name!r} has no default; after the body pigeon "
                "fills in one parameter annotated 'Message' and those annotated "
                "'Annotated[T, Depends(fn)]' (a dependency may take the App itself: "
                "'def serving(app: App) -> App'); give the others a default"
            )
    return found
