"""The codecs pigeon knows, by content type: the one place that maps a content type to a codec."""

from __future__ import annotations

from pigeon.codecs.base import Codec, base_content_type
from pigeon.codecs.json import JSONCodec
from pigeon.codecs.protobuf import ALIASES as PROTOBUF_ALIASES
from pigeon.codecs.protobuf import ProtobufCodec
from pigeon.errors import DecodeError

JSON = JSONCodec()
"""The default codec: ``application/json`` through pydantic."""
PROTOBUF = ProtobufCodec()
"""``application/x-protobuf``: protobuf messages, their full name in a header."""

_CODECS: dict[str, Codec] = {JSON.content_type: JSON, PROTOBUF.content_type: PROTOBUF}
_ALIASES = dict.fromkeys(PROTOBUF_ALIASES, PROTOBUF.content_type)
"""Other names of a known content type -> the name pigeon uses."""


def kind_of(content_type: str) -> str:
    """The content type without parameters, lower case, other names of a known one mapped to
    pigeon's: ``'application/protobuf'`` -> ``'application/x-protobuf'``."""
    base = base_content_type(content_type)
    return _ALIASES.get(base, base)


def register_codec(codec: Codec) -> None:
    """Make ``codec`` the decoder of messages whose content type is ``codec.content_type``."""
    _CODECS[base_content_type(codec.content_type)] = codec


def codec_for(content_type: str) -> Codec:
    """Return the codec for ``content_type`` (parameters ignored); an empty one means JSON.

    Raises ``DecodeError`` naming the supported content types for any other.
    """
    if not content_type:
        return JSON
    codec = _CODECS.get(kind_of(content_type))
    if codec is None:
        known = ", ".join(sorted(_CODECS))
        raise DecodeError(f"unknown content type {content_type!r}; pigeon decodes {known}")
    return codec


def codec_of(content_type: str) -> Codec | None:
    """The codec of a known content type, ``None`` for raw or unknown ones."""
    if not content_type:
        return JSON
    codec = _CODECS.get(content_type)  # the usual: the name pigeon gives it, once per reply
    if codec is None or content_type in _ALIASES:
        codec = _CODECS.get(kind_of(content_type))
    return codec
