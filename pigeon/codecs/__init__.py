"""Codecs, chosen on receipt by the message's content type.

``JSON`` (``application/json``, through pydantic) is the default. ``codec_for`` maps a content type
to its codec and raises ``DecodeError`` for one pigeon does not know. ``decoder_for`` and
``encode`` are what the patterns use: decoders are built once per handler, at decoration time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from pigeon.codecs.base import Codec, base_content_type
from pigeon.codecs.json import CONTENT_TYPE as JSON_CONTENT_TYPE
from pigeon.codecs.json import JSONCodec, adapter_for
from pigeon.errors import DecodeError

JSON = JSONCodec()
BYTES_CONTENT_TYPE = "application/octet-stream"
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"

_RAW_TYPES = (bytes, bytearray, memoryview, str)
_CODECS: dict[str, Codec] = {JSON.content_type: JSON}

Decoder = Callable[[bytes, str], Any]
"""``decode(body, content_type) -> value``; raises ``DecodeError`` only."""


def register_codec(codec: Codec) -> None:
    """Make ``codec`` the decoder of messages whose content type is ``codec.content_type``."""
    _CODECS[base_content_type(codec.content_type)] = codec


def codec_for(content_type: str) -> Codec:
    """Return the codec for ``content_type`` (parameters ignored); an empty one means JSON.

    Raises ``DecodeError`` naming the supported content types for any other.
    """
    if not content_type:
        return JSON
    codec = _CODECS.get(base_content_type(content_type))
    if codec is None:
        known = ", ".join(sorted(_CODECS))
        raise DecodeError(f"unknown content type {content_type!r}; pigeon decodes {known}")
    return codec


def encode(obj: Any, codec: Codec = JSON) -> tuple[bytes, str]:
    """Encode ``obj`` for the wire: ``(body, content_type)``.

    ``bytes`` travel as they are (``application/octet-stream``), ``str`` as UTF-8 text, anything
    else through ``codec``. Raises ``EncodeError`` naming the type the codec cannot encode.
    """
    if isinstance(obj, _RAW_TYPES):
        if isinstance(obj, str):
            return obj.encode(), TEXT_CONTENT_TYPE
        return bytes(obj), BYTES_CONTENT_TYPE
    return codec.encode(obj), codec.content_type


def decoder_for(into: Any) -> Decoder:
    """Build, once, the decoder of a handler whose body parameter is annotated ``into``.

    ``bytes`` receives the raw body, ``str`` the body as UTF-8 text; any other type is decoded by
    the codec the message's content type names and validated into ``into``. Raises
    ``ConfigurationError`` now if no codec can ever produce ``into``.
    """
    if into is bytes:
        return _raw_body
    if into is str:
        return _text_body
    adapter = adapter_for(into)

    def decode(body: bytes, content_type: str) -> Any:
        if (
            content_type == JSON_CONTENT_TYPE
            or not content_type
            or base_content_type(content_type) == JSON_CONTENT_TYPE
        ):
            try:
                return adapter.validate_json(body)
            except ValidationError:
                return JSON.decode(body, into)  # re-raises as DecodeError with the reasons
        return codec_for(content_type).decode(body, into)

    return decode


def _raw_body(body: bytes, content_type: str) -> bytes:
    return body


def _text_body(body: bytes, content_type: str) -> str:
    try:
        return body.decode()
    except UnicodeDecodeError as exc:
        raise DecodeError(f"expected UTF-8 text, got invalid bytes: {exc}") from exc


__all__ = [
    "JSON",
    "Codec",
    "Decoder",
    "JSONCodec",
    "codec_for",
    "decoder_for",
    "encode",
    "register_codec",
]
