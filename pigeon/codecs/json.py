"""JSON through pydantic: any type pydantic can validate, validated on the way in."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, PydanticSchemaGenerationError, TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError

from pigeon.codecs.protobuf import is_protobuf_message, to_json_bytes
from pigeon.errors import ConfigurationError, DecodeError, EncodeError

CONTENT_TYPE = "application/json"
DEFAULT_MAX_SIZE = 16 * 1024 * 1024


@lru_cache(maxsize=1024)
def adapter_for(into: Any) -> TypeAdapter[Any]:
    """The cached pydantic adapter of ``into``; ``ConfigurationError`` if pydantic has none."""
    try:
        return TypeAdapter(into)
    except (PydanticSchemaGenerationError, TypeError) as exc:
        raise ConfigurationError(
            f"pigeon cannot decode {_name(into)} as JSON: {exc}. Use a pydantic model, a "
            "dataclass, a TypedDict, a builtin type, a protobuf message class, bytes, str or dict."
        ) from exc


class JSONCodec:
    """The default codec: ``application/json``, encoded and validated by pydantic v2.

    Protobuf messages are encoded in their canonical JSON mapping. Bodies over ``max_size`` bytes
    are refused with ``DecodeError`` before parsing.
    """

    content_type = CONTENT_TYPE

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.max_size = max_size

    def encode(self, obj: Any) -> bytes:
        """Encode ``obj``; ``EncodeError`` naming its type if pydantic cannot serialise it."""
        if isinstance(obj, BaseModel):
            return obj.__pydantic_serializer__.to_json(obj)
        if is_protobuf_message(obj):
            return to_json_bytes(obj)
        try:
            obj_type: Any = type(obj)
            return adapter_for(obj_type).dump_json(obj)
        except (ConfigurationError, PydanticSerializationError) as exc:
            raise EncodeError(
                f"cannot encode {type(obj).__qualname__} as JSON: use a pydantic model, a "
                f"dataclass or a JSON-compatible value ({exc})"
            ) from exc

    def decode(self, data: bytes, into: Any) -> Any:
        """Validate ``data`` into ``into``; ``DecodeError`` with pydantic's reasons if it fails,
        or if the body is over ``max_size`` bytes."""
        try:
            prepared = self.prepare(into)
        except ConfigurationError as exc:
            raise DecodeError(str(exc)) from exc
        return prepared(data)

    def prepare(self, into: Any) -> Callable[[bytes], Any]:
        """``decode`` for one type, built once: what a handler's decoder calls per message.

        Raises ``ConfigurationError`` now if pydantic cannot validate ``into``.
        """
        validate_json = adapter_for(into).validator.validate_json
        name, max_size = _name(into), self.max_size

        def decode(data: bytes) -> Any:
            if len(data) > max_size:
                raise DecodeError(
                    f"JSON body of {len(data)} bytes for {name} is over the limit of {max_size} "
                    "bytes; raise JSONCodec(max_size=...) if that is intended"
                )
            try:
                return validate_json(data)
            except ValidationError as exc:
                raise DecodeError(f"invalid {name}: {describe_validation_error(exc)}") from exc

        return decode


def json_first(
    codec: JSONCodec, into: Any, otherwise: Callable[[bytes, str, Mapping[str, str]], Any]
) -> Callable[[bytes, str, Mapping[str, str]], Any]:
    """A handler's decoder for ``into``: ``decode(body, content_type, headers)`` validates an
    ``application/json`` body with ``codec`` and hands any other to ``otherwise``.

    With ``JSONCodec``'s own ``prepare`` the body is validated in this one call (what ``prepare``
    does, minus a call per message); a subclass's ``prepare`` is called as it is. Raises
    ``ConfigurationError`` now if pydantic cannot validate ``into``.
    """
    from_json = codec.prepare(into)
    if type(codec).prepare is not JSONCodec.prepare:

        def decode_with_prepare(body: bytes, content_type: str, headers: Mapping[str, str]) -> Any:
            if content_type == CONTENT_TYPE:
                return from_json(body)
            return otherwise(body, content_type, headers)

        return decode_with_prepare
    validate_json = adapter_for(into).validator.validate_json
    name, max_size = _name(into), codec.max_size

    def decode(body: bytes, content_type: str, headers: Mapping[str, str]) -> Any:
        if content_type == CONTENT_TYPE and len(body) <= max_size:
            try:
                return validate_json(body)
            except ValidationError as exc:
                raise DecodeError(f"invalid {name}: {describe_validation_error(exc)}") from exc
        return otherwise(body, content_type, headers)  # an oversize body too: prepare's error

    return decode


def _name(into: Any) -> str:
    return getattr(into, "__qualname__", repr(into))


def describe_validation_error(exc: ValidationError) -> str:
    """pydantic's reasons, short: ``field: message`` for the first few errors."""
    errors = exc.errors(include_url=False, include_input=False)
    parts = [f"{'.'.join(map(str, e['loc'])) or '<body>'}: {e['msg']}" for e in errors[:5]]
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more
