"""Building the envelope of an outgoing message."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from pigeon.codecs import JSON, Codec, encode
from pigeon.message import Envelope, new_envelope

JSON_TYPE = JSON.content_type


def envelope_for(obj: Any, codec: Codec | None, headers: dict[str, str] | None = None) -> Envelope:
    """Encode ``obj`` (``codec=None``: by its type) into a new envelope with a fresh message id.

    Raises ``EncodeError`` naming the type the codec cannot encode.
    """
    if (codec is None or codec is JSON) and isinstance(obj, BaseModel):
        # the common case, straight to pydantic's serializer (what JSON.encode does for a model)
        body = obj.__pydantic_serializer__.to_json(obj)
        return new_envelope(body, {**headers} if headers else {}, JSON_TYPE)
    body, content_type, codec_headers = encode(obj, codec)
    all_headers = {**headers, **codec_headers} if headers else codec_headers
    return new_envelope(body, all_headers, content_type)
