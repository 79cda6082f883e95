"""A user's handler function, inspected once at decoration time and called per message."""

from __future__ import annotations

import asyncio
import inspect
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pigeon.codecs import JSON, Decoder, JSONCodec, decoder_for
from pigeon.errors import ConfigurationError
from pigeon.message import Envelope, Message


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    """How to decode for, and call, one handler function."""

    fn: Callable[..., Any]
    name: str
    body_type: Any
    decode: Decoder
    message_param: str | None
    is_async: bool

    def decode_body(self, envelope: Envelope) -> Any:
        """The body decoded into the handler's type; raises ``DecodeError``."""
        return self.decode(envelope.body, envelope.content_type, envelope.headers)

    def call(self, body: Any, envelope: Envelope, subject: str, attempt: int = 1) -> Awaitable[Any]:
        """Call the handler with ``body`` (and its ``Message`` if it asked for one); await the
        result. A sync handler runs in a worker thread."""
        if self.message_param is None:
            if self.is_async:
                return self.fn(body)  # type: ignore[no-any-return]
            return asyncio.to_thread(self.fn, body)
        kwargs = {self.message_param: Message.of(envelope, subject, attempt)}
        if self.is_async:
            return self.fn(body, **kwargs)  # type: ignore[no-any-return]
        return asyncio.to_thread(self.fn, body, **kwargs)


def inspect_handler(fn: Callable[..., Any], json: JSONCodec = JSON) -> HandlerSpec:
    """Read ``fn``'s signature and build its decoder; ``ConfigurationError`` saying how to fix it.

    The first parameter receives the body and must be annotated with its type; one more parameter
    annotated ``Message`` may follow; any other parameter needs a default.
    """
    name = getattr(fn, "__qualname__", repr(fn))
    if not callable(fn):
        raise ConfigurationError(f"{name!r} is not callable; decorate a function")
    params = list(inspect.signature(fn).parameters.values())
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:  # a forward reference that does not resolve, say
        raise ConfigurationError(f"handler {name}: cannot resolve its annotations: {exc}") from exc
    if not params or params[0].kind not in _POSITIONAL:
        raise ConfigurationError(
            f"handler {name} takes no body parameter; add one annotated with the message type, "
            "e.g. 'async def handle(order: Order) -> None'"
        )
    body = params[0]
    if body.name not in hints or hints[body.name] is Message:
        raise ConfigurationError(
            f"handler {name}: annotate its first parameter {body.name!r} with the message type "
            "(a pydantic model, dataclass, bytes, str or dict): it decides how bodies are decoded"
        )
    return HandlerSpec(
        fn=fn,
        name=name,
        body_type=hints[body.name],
        decode=decoder_for(hints[body.name], json),
        message_param=_message_param(name, params[1:], hints),
        is_async=inspect.iscoroutinefunction(fn),
    )


def return_type(spec: HandlerSpec) -> Any:
    """The handler's return annotation, ``Any`` if it has none."""
    return typing.get_type_hints(spec.fn).get("return", Any)


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


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
                f"handler {name}: parameter {param.name!r} has no default; after the body only "
                "one parameter annotated 'Message' is filled in"
            )
    return found
