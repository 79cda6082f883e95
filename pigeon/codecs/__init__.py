"""Codecs: JSON (through pydantic, the default) and Protobuf, chosen on receipt by content type.

``codec_for`` maps a content type to its codec and raises ``DecodeError`` for one pigeon does not
know. ``encode`` and ``decoder_for`` are what the patterns use; decoders are built once per
handler, at decoration time.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message as ProtobufMessage

from pigeon import headers as h
from pigeon.codecs.base import Codec, base_content_type
from pigeon.codecs.decoding import Decoder
from pigeon.codecs.decoding import decoder_for as _decoder_for
from pigeon.codecs.json import JSONCodec
from pigeon.codecs.protobuf import ProtobufCodec, full_name
from pigeon.errors import DecodeError

JSON = JSONCodec()
"""The default codec: ``application/json`` through pydantic."""
PROTOBUF = ProtobufCodec()
"""``application/x-protobuf``: protobuf messages, their full name in a header."""

BYTES_CONTENT_TYPE = "application/octet-stream"
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"

_RAW_TYPES = (bytes, bytearray, memoryview, str)
_CODECS: dict[str, Codec] = {JSON.content_type: JSON, PROTOBUF.content_type: PROTOBUF}


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


def encode(obj: Any, codec: Codec | None = None) -> tuple[bytes, str, dict[str, str]]:
    """Encode ``obj`` for the wire: ``(body, content_type, headers)``.

    ``bytes`` travel as they are, labelled with ``codec``'s content type if one is given (bytes
    already encoded), else ``application/octet-stream``; ``str`` goes as UTF-8 text. Otherwise
    ``codec`` encodes it; without one, protobuf messages go as Protobuf and the rest as JSON.
    Raises ``EncodeError`` naming the type the codec cannot encode.
    """
    if isinstance(obj, _RAW_TYPES):
        if isinstance(obj, str):
            return obj.encode(), TEXT_CONTENT_TYPE, {}
        return bytes(obj), codec.content_type if codec else BYTES_CONTENT_TYPE, {}
    if codec is None:
        codec = PROTOBUF if isinstance(obj, ProtobufMessage) else JSON
    body = codec.encode(obj)
    if isinstance(codec, ProtobufCodec):
        return body, codec.content_type, {h.PROTOBUF_TYPE: full_name(type(obj))}
    return body, codec.content_type, {}


def decoder_for(into: Any, json: JSONCodec = JSON) -> Decoder:
    """Build, once, the decoder of a handler whose body parameter is annotated ``into``.

    ``bytes`` receives the raw body, ``str`` the body as UTF-8 text. A protobuf class takes only
    Protobuf, a type pydantic validates only JSON; ``dict``, ``Any`` and unions of both kinds take
    either, picked by the message's content type. Raises ``ConfigurationError`` now if no codec
    can ever produce ``into``.
    """

    def other(body: bytes, content_type: str) -> Any:
        return codec_for(content_type).decode(body, into)

    return _decoder_for(into, json, other)


def codec_of(content_type: str) -> Codec | None:
    """The codec of a known content type, ``None`` for raw or unknown ones."""
    return _CODECS.get(base_content_type(content_type)) if content_type else JSON


__all__ = [
    "JSON",
    "PROTOBUF",
    "Codec",
    "Decoder",
    "JSONCodec",
    "ProtobufCodec",
    "codec_for",
    "codec_of",
    "decoder_for",
    "encode",
    "register_codec",
]
