"""Building the envelope of an outgoing message."""

from __future__ import annotations

import time
from typing import Any

from pigeon.codecs import Codec, encode
from pigeon.message import Envelope, new_id


def envelope_for(obj: Any, codec: Codec | None, headers: dict[str, str] | None = None) -> Envelope:
    """Encode ``obj`` (``codec=None``: by its type) into a new envelope with a fresh message id.

    Raises ``EncodeError`` naming the type the codec cannot encode.
    """
    body, content_type, codec_headers = encode(obj, codec)
    all_headers = {**headers, **codec_headers} if headers else codec_headers
    # every field given: dataclass default factories cost more than the rest of this function
    return Envelope(body, all_headers, content_type, new_id(), None, None, time.time())
