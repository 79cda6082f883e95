"""Building the envelope of an outgoing message."""

from __future__ import annotations

import time
from typing import Any

from pigeon.codecs import Codec, encode
from pigeon.message import Envelope, new_id


def envelope_for(obj: Any, codec: Codec, headers: dict[str, str] | None = None) -> Envelope:
    """Encode ``obj`` into a new envelope with a fresh message id; raises ``EncodeError``."""
    body, content_type = encode(obj, codec)
    # every field given: dataclass default factories cost more than the rest of this function
    return Envelope(
        body, dict(headers) if headers else {}, content_type, new_id(), None, None, time.time()
    )
