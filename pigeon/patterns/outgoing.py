"""Building the envelope of an outgoing message."""

from __future__ import annotations

from typing import Any

from pigeon.codecs import Codec, encode
from pigeon.message import Envelope


def envelope_for(obj: Any, codec: Codec, headers: dict[str, str] | None = None) -> Envelope:
    """Encode ``obj`` into a new envelope with a fresh message id; raises ``EncodeError``."""
    body, content_type = encode(obj, codec)
    return Envelope(body, dict(headers) if headers else {}, content_type)
