"""What one call may send, checked before it is sent: a broker that receives more than it allows
closes the whole connection (every handler of the App with it), so the one call fails instead.
"""

from __future__ import annotations

from collections.abc import Mapping

from pigeon.errors import MessageTooLarge

MAX_HEADER_BYTES = 64 * 1024
"""The most header bytes (names and values, UTF-8) one message may carry, on every transport:
headers are metadata, and RabbitMQ must fit them with the other properties into one frame
(``frame_max``, 128 KiB by default). A larger value belongs in the body."""

MAX_HEADER_NAME_BYTES = 255
"""The longest header name: AMQP's short string, the tightest of pigeon's brokers."""

ENTRY_OVERHEAD = 6
"""Bytes an AMQP header table adds per entry (name length, value type, value length)."""


def header_bytes(headers: Mapping[str, str]) -> int:
    """The size of ``headers`` on the wire, roughly: names, values and a few bytes per entry."""
    return sum(len(k.encode()) + len(v.encode()) + ENTRY_OVERHEAD for k, v in headers.items())


def check_headers(
    headers: Mapping[str, str], url: str, limit: int = MAX_HEADER_BYTES, why: str = ""
) -> None:
    """Raise ``MessageTooLarge`` if ``headers`` are over ``limit`` bytes (``why`` says whose
    limit, for the message), or a name is over ``MAX_HEADER_NAME_BYTES``."""
    if not headers:
        return
    rough = sum(len(k) + len(v) for k, v in headers.items())
    if rough * 4 + len(headers) * ENTRY_OVERHEAD <= limit and all(
        len(k) * 4 <= MAX_HEADER_NAME_BYTES for k in headers
    ):
        return  # the common case, decided without encoding
    for name in headers:
        if len(name.encode()) > MAX_HEADER_NAME_BYTES:
            raise MessageTooLarge(
                f"{url}: header name {name[:40]!r}... is over {MAX_HEADER_NAME_BYTES} bytes; "
                "use a shorter name"
            )
    size = header_bytes(headers)
    if size > limit:
        raise MessageTooLarge(
            f"{url}: the message's headers are {size} bytes, over the {limit} bytes allowed"
            f"{' (' + why + ')' if why else ''}; carry large values in the body"
        )
