"""Decoders: built once per handler from its body annotation, chosen per message by content type.

A pydantic-validated type takes JSON only, a protobuf class Protobuf only; ``dict``, ``Any`` and a
union of a protobuf class with other types take both. ``bytes`` and ``str`` take the raw body;
``Any`` also takes every body pigeon sends: ``text/plain`` as ``str``, ``application/octet-stream``
as ``bytes``. Any other type pydantic validates reads ``text/plain`` as the JSON string it would
be (a ``str`` sent reaches a handler typed as an Enum of strings, a UUID or a date).
"""

from __future__ import annotations

import json as stdlib_json
import types
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Union

from pydantic import ValidationError

from pigeon import headers as h
from pigeon.codecs.json import CONTENT_TYPE as JSON_TYPE
from pigeon.codecs.json import JSONCodec, adapter_for, describe_validation_error, json_first
from pigeon.codecs.protobuf import CONTENT_TYPE as PROTOBUF_TYPE
from pigeon.codecs.protobuf import class_named, full_name, is_protobuf_class, to_dict
from pigeon.codecs.registry import JSON, PROTOBUF, codec_for, codec_of, kind_of
from pigeon.errors import DecodeError

TEXT_TYPE = "text/plain"
"""The content type of a ``str`` body (with ``; charset=utf-8``)."""
BYTES_TYPE = "application/octet-stream"
"""The content type of a ``bytes`` body sent without a codec."""

Decoder = Callable[[bytes, str, Mapping[str, str]], Any]
"""``decode(body, content_type, headers) -> value``; raises ``DecodeError`` only."""

BodyDecoder = Callable[[bytes, Mapping[str, str]], Any]
JsonDecoder = Callable[[bytes], Any]
OtherDecoder = Callable[[bytes, str], Any]


def decoder_for(into: Any, json: JSONCodec = JSON) -> Decoder:
    """Build, once, the decoder of a handler whose body parameter is annotated ``into``.

    ``bytes`` receives the raw body, ``str`` the body as UTF-8 text. A protobuf class takes only
    Protobuf, a type pydantic validates only JSON; ``dict``, ``Any`` and unions of both kinds take
    either, picked by the message's content type; any other content type goes to its registered
    codec. Raises ``ConfigurationError`` now if no codec can ever produce ``into``.
    """

    if into is bytes:
        return _raw_body
    if into is str:
        return _text_body
    if typing.get_origin(into) is Annotated and typing.get_args(into)[0] in (bytes, str):
        return _constrained_raw(into)
    raw = _RAW_DECODERS if into is Any else {}
    protobuf_classes, json_types = split_union(into)
    from_json = _json_decoder(json_types, json) if json_types else None
    from_protobuf = _protobuf_decoder(protobuf_classes, into)

    def other(body: bytes, content_type: str) -> Any:
        kind = kind_of(content_type)
        by_raw = raw.get(kind)
        if by_raw is not None:  # what pigeon sends for str and bytes, read back as such
            return by_raw(body, content_type, {})
        if kind == TEXT_TYPE and from_json is not None:
            return _text_as_json_string(body, from_json)
        if kind == BYTES_TYPE and codec_of(kind) is None:
            raise DecodeError(
                f"got {BYTES_TYPE} (bytes sent) for {_name(into)}: send the value itself for "
                "pigeon to encode, or annotate the body 'bytes' to take raw bytes"
            )
        return codec_for(content_type).decode(body, into)

    if from_protobuf is None and from_json is not None:
        return json_first(json, _json_target(json_types), _json_only(from_json, into, other))
    default_type = PROTOBUF_TYPE if from_json is None else JSON_TYPE
    name = _name(into)

    def decode(body: bytes, content_type: str, headers: Mapping[str, str]) -> Any:
        if content_type == JSON_TYPE:
            kind = JSON_TYPE
        else:
            kind = kind_of(content_type) if content_type else default_type
        if kind == JSON_TYPE:
            if from_json is None:
                raise DecodeError(f"expected {PROTOBUF_TYPE} for {name}, got {JSON_TYPE}")
            return from_json(body)
        if kind == PROTOBUF_TYPE:
            if from_protobuf is None:
                sent = headers.get(h.PROTOBUF_TYPE, "a protobuf message")
                raise DecodeError(f"expected {JSON_TYPE} for {name}, got {PROTOBUF_TYPE} ({sent})")
            if content_type:
                return from_protobuf(body, headers)
            try:  # a plain client's body: no content type to go by
                return from_protobuf(body, headers)
            except DecodeError as exc:
                raise DecodeError(
                    f"expected {PROTOBUF_TYPE} for {name}, got a body without content type "
                    f"that is not one ({exc})"
                ) from exc
        return other(body, content_type)

    return decode


def _json_only(from_json: JsonDecoder, into: Any, other: OtherDecoder) -> Decoder:
    """The common case: a type that only JSON can produce (``json_first`` takes an
    ``application/json`` body before this decoder sees it)."""
    name = _name(into)

    def decode(body: bytes, content_type: str, headers: Mapping[str, str]) -> Any:
        if content_type == JSON_TYPE or not content_type:
            return from_json(body)
        kind = kind_of(content_type)
        if kind == JSON_TYPE:
            return from_json(body)
        if kind == PROTOBUF_TYPE:
            sent = headers.get(h.PROTOBUF_TYPE, "a protobuf message")
            raise DecodeError(f"expected {JSON_TYPE} for {name}, got {PROTOBUF_TYPE} ({sent})")
        return other(body, content_type)

    return decode


def split_union(into: Any) -> tuple[list[type[Any]], list[Any]]:
    """Protobuf classes and other types of an annotation (a union is split into its members)."""
    members = typing.get_args(into) if _is_union(into) else (into,)
    protobuf = [m for m in members if is_protobuf_class(m)]
    others = [m for m in members if not is_protobuf_class(m)]
    return protobuf, others


def _is_union(into: Any) -> bool:
    return typing.get_origin(into) in (Union, types.UnionType)


def _json_target(json_types: list[Any]) -> Any:
    return json_types[0] if len(json_types) == 1 else Union[tuple(json_types)]  # noqa: UP007


def _json_decoder(json_types: list[Any], json: JSONCodec) -> JsonDecoder:
    return json.prepare(_json_target(json_types))


def _protobuf_decoder(classes: list[type[Any]], into: Any) -> BodyDecoder | None:
    by_name = {full_name(c): c for c in classes}
    takes_any = into in (dict, Any) or typing.get_origin(into) is dict
    if not by_name and not takes_any:
        return None

    def decode(body: bytes, headers: Mapping[str, str]) -> Any:
        sent = headers.get(h.PROTOBUF_TYPE)
        if by_name:
            message_class = _pick(by_name, sent)
        elif sent:
            message_class = class_named(sent)
        else:
            raise DecodeError(f"a protobuf body needs its type in the {h.PROTOBUF_TYPE} header")
        message = PROTOBUF.decode(body, message_class)
        return message if into is Any or by_name else to_dict(message)

    return decode


def _pick(by_name: dict[str, type[Any]], sent: str | None) -> type[Any]:
    if sent is None:
        if len(by_name) == 1:
            return next(iter(by_name.values()))
        raise DecodeError(f"a protobuf body without {h.PROTOBUF_TYPE}; expected one of {by_name}")
    if sent not in by_name:
        raise DecodeError(f"expected protobuf {' or '.join(by_name)}, got {sent}")
    return by_name[sent]


def _constrained_raw(into: Any) -> Decoder:
    """``Annotated[bytes, ...]`` or ``Annotated[str, ...]``: the raw body (as ``bytes`` or
    ``str`` would get it), then checked against the annotation's constraints."""
    read = _raw_body if typing.get_args(into)[0] is bytes else _text_body
    validate = adapter_for(into).validate_python

    def decode(body: bytes, content_type: str, headers: Mapping[str, str]) -> Any:
        try:
            return validate(read(body, content_type, headers))
        except ValidationError as exc:
            raise DecodeError(f"invalid {_name(into)}: {describe_validation_error(exc)}") from exc

    return decode


def _text_as_json_string(body: bytes, from_json: JsonDecoder) -> Any:
    """A ``text/plain`` body (a ``str`` sent) read by a type that is not ``str`` itself: as the
    JSON string it would be, so that an Enum of strings, a UUID or a date gets it as from JSON."""
    text = _text_body(body, TEXT_TYPE, {})
    try:
        return from_json(stdlib_json.dumps(text).encode())
    except DecodeError as exc:
        raise DecodeError(f"a {TEXT_TYPE} body (a str sent), read as a JSON string: {exc}") from exc


def _raw_body(body: bytes, content_type: str, headers: Mapping[str, str]) -> bytes:
    return body


def _text_body(body: bytes, content_type: str, headers: Mapping[str, str]) -> str:
    try:
        return body.decode()
    except UnicodeDecodeError as exc:
        raise DecodeError(f"expected UTF-8 text, got invalid bytes: {exc}") from exc


_RAW_DECODERS: dict[str, Decoder] = {TEXT_TYPE: _text_body, BYTES_TYPE: _raw_body}
"""Content types of raw bodies (``str`` and ``bytes`` as pigeon sends them) that ``Any`` reads
as ``str`` and ``bytes``."""


def _name(into: Any) -> str:
    if is_protobuf_class(into):
        return full_name(into)
    return getattr(into, "__qualname__", None) or repr(into)
