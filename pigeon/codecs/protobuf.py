"""Protobuf: ``application/x-protobuf``, the message's full name in ``x-pigeon-protobuf-type``.

pigeon sends ``application/x-protobuf`` and reads ``application/protobuf`` and
``application/vnd.google.protobuf`` as the same.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from pigeon.errors import DecodeError, EncodeError

if TYPE_CHECKING:
    from google.protobuf.message import Message as ProtobufMessage

CONTENT_TYPE = "application/x-protobuf"
ALIASES = ("application/protobuf", "application/vnd.google.protobuf")
"""Other names clients give Protobuf bodies (IANA's registered one, Google's); read alike."""


def message_base() -> type[ProtobufMessage] | None:
    """``google.protobuf``'s ``Message`` class, or ``None`` while protobuf is not imported.

    No protobuf message or class can exist before (generated modules import protobuf), so pigeon
    asks this instead of importing protobuf: ``import pigeon`` stays ~10 ms lighter without it.
    """
    module = sys.modules.get("google.protobuf.message")
    base: type[ProtobufMessage] | None = getattr(module, "Message", None)
    return base


def is_protobuf_message(obj: Any) -> bool:
    """Whether ``obj`` is a protobuf message."""
    base = message_base()
    return base is not None and isinstance(obj, base)


def is_protobuf_class(into: Any) -> bool:
    """Whether ``into`` is a generated protobuf message class."""
    base = message_base()
    return base is not None and isinstance(into, type) and issubclass(into, base)


def full_name(message_class: type[ProtobufMessage]) -> str:
    """``pkg.Name`` of a protobuf message class."""
    return str(message_class.DESCRIPTOR.full_name)


def class_named(name: str) -> type[ProtobufMessage]:
    """The message class of ``name`` from the default descriptor pool (its module imported)."""
    from google.protobuf import descriptor_pool, message_factory

    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(name)
    except KeyError:
        raise DecodeError(
            f"protobuf type {name!r} is unknown here; import its generated _pb2 module"
        ) from None
    message_class: type[ProtobufMessage] = message_factory.GetMessageClass(descriptor)
    return message_class


class ProtobufCodec:
    """Protobuf messages as their binary wire form; decodes only into protobuf classes."""

    content_type = CONTENT_TYPE

    def encode(self, obj: Any) -> bytes:
        """``obj.SerializeToString()``; ``EncodeError`` if ``obj`` is not a protobuf message."""
        if not is_protobuf_message(obj):
            raise EncodeError(
                f"the Protobuf codec encodes protobuf messages, not {type(obj).__qualname__}; "
                "send it with the JSON codec"
            )
        from google.protobuf.message import EncodeError as ProtobufEncodeError

        try:
            return obj.SerializeToString()  # type: ignore[no-any-return]
        except ProtobufEncodeError as exc:
            raise EncodeError(f"cannot encode {full_name(type(obj))}: {exc}") from exc

    def decode(self, data: bytes, into: Any) -> Any:
        """Parse ``data`` as ``into``; ``DecodeError`` for bytes that are not such a message."""
        if not is_protobuf_class(into):
            raise DecodeError(
                f"expected a body for {getattr(into, '__qualname__', into)!r}, got {CONTENT_TYPE}"
            )
        try:
            return into.FromString(data)
        except Exception as exc:  # DecodeError, and RuntimeWarning or ValueError for some bytes
            raise DecodeError(
                f"invalid protobuf {full_name(into)} ({len(data)} bytes): {exc}"
            ) from exc


def to_json_bytes(message: ProtobufMessage) -> bytes:
    """A protobuf message in its canonical JSON mapping (field names as in the .proto)."""
    from google.protobuf import json_format

    return json_format.MessageToJson(
        message, preserving_proto_field_name=True, indent=None
    ).encode()


def to_dict(message: ProtobufMessage) -> dict[str, Any]:
    """A protobuf message as a plain dict (the JSON mapping)."""
    from google.protobuf import json_format

    return json_format.MessageToDict(message, preserving_proto_field_name=True)
