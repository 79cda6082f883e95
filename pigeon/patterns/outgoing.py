"""Building the envelope of an outgoing message."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from pigeon.codecs import JSON, PROTOBUF, Codec, encode
from pigeon.errors import ConfigurationError
from pigeon.headers import PROTOBUF_TYPE, check_user_headers
from pigeon.message import Envelope, new_envelope

JSON_TYPE = JSON.content_type

_MODELS: dict[type, bool] = {}
"""Whether a type is a pydantic model, by type: ``isinstance(obj, BaseModel)`` goes through
ABCMeta's ``__instancecheck__`` (~680 instructions, once per message sent), a lookup here ~150."""


def envelope_for(obj: Any, codec: Codec | None, headers: dict[str, str] | None = None) -> Envelope:
    """Encode ``obj`` (``codec=None``: by its type) into a new envelope with a fresh message id.

    Raises ``EncodeError`` naming the type the codec cannot encode, ``ConfigurationError``
    naming a header pigeon or a broker reads as its own (``headers.check_user_headers``).
    """
    if headers:
        check_user_headers(headers)
        if PROTOBUF_TYPE in headers and not (codec is PROTOBUF and isinstance(obj, bytes)):
            raise ConfigurationError(
                f"header {PROTOBUF_TYPE!r} names the type of a body already encoded as protobuf: "
                "send that body as bytes with codec=PROTOBUF (a protobuf message sent as it is "
                "gets the header by itself)"
            )
    if codec is None or codec is JSON:
        model = _MODELS.get(type(obj))
        if model is None:
            model = _is_model(type(obj))
        if model:  # the common case, straight to pydantic's serializer (as JSON.encode does)
            body = obj.__pydantic_serializer__.to_json(obj)
            return new_envelope(body, {**headers} if headers else {}, JSON_TYPE)
    body, content_type, codec_headers = encode(obj, codec)
    all_headers = {**headers, **codec_headers} if headers else codec_headers
    return new_envelope(body, all_headers, content_type)


def _is_model(cls: type) -> bool:
    if len(_MODELS) >= 1024:  # types made on the fly: the cache stays small
        _MODELS.clear()
    model = _MODELS[cls] = issubclass(cls, BaseModel)
    return model
