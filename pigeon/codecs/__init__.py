"""Codecs: JSON (through pydantic, the default) and Protobuf, chosen on receipt by content type.

``registry.codec_for`` maps a content type to its codec and raises ``DecodeError`` for one pigeon
does not know. ``encode`` and ``decoder_for`` are what the patterns use; decoders are built once
per handler, at decoration time, from the codecs' own decoding.
"""

from __future__ import annotations

from typing import Any

from pigeon import headers as h
from pigeon.codecs.base import Codec
from pigeon.codecs.decoding import BYTES_TYPE, TEXT_TYPE, Decoder, decoder_for
from pigeon.codecs.json import JSONCodec
from pigeon.codecs.protobuf import ProtobufCodec, full_name, is_protobuf_message
from pigeon.codecs.registry import JSON, PROTOBUF, codec_for, codec_of, register_codec

BYTES_CONTENT_TYPE = BYTES_TYPE
TEXT_CONTENT_TYPE = f"{TEXT_TYPE}; charset=utf-8"

_RAW_TYPES = (bytes, bytearray, memoryview, str)


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
        codec = PROTOBUF if is_protobuf_message(obj) else JSON
    body = codec.encode(obj)
    if isinstance(codec, ProtobufCodec):
        return body, codec.content_type, {h.PROTOBUF_TYPE: full_name(type(obj))}
    return body, codec.content_type, {}


def shown(value: Any) -> str | bytes:
    """A decoded value as a command line prints it: ``str`` and ``bytes`` as they are, anything
    else as JSON (a protobuf message in its canonical JSON mapping)."""
    if isinstance(value, str | bytes):
        return value
    return JSON.encode(value).decode()


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
    "shown",
]
