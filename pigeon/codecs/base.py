"""The codec protocol: a content type and two methods, raising one ``DecodeError``."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Codec(Protocol):
    """Turns objects into bytes and back.

    ``encode`` raises ``EncodeError`` naming the object's type when it cannot encode it; ``decode``
    raises ``DecodeError`` and nothing else for bytes that do not fit ``into``. A codec never
    unpickles and never executes anything from the payload.
    """

    content_type: str

    def encode(self, obj: Any) -> bytes:
        """Encode ``obj``."""
        ...

    def decode(self, data: bytes, into: Any) -> Any:
        """Decode ``data`` into an instance of ``into`` (a type or type expression)."""
        ...


def base_content_type(content_type: str) -> str:
    """``'application/json; charset=utf-8'`` -> ``'application/json'``."""
    return content_type.split(";", 1)[0].strip().lower()
