"""A guard on pamqp's frame decoding: a timestamp it cannot represent never kills the connection.

AMQP 0-9-1 timestamps are seconds, but foreign producers send milliseconds, microseconds,
nanoseconds, or (the Java client, before 1970) a negative number read as a huge unsigned one.
pamqp turns a value past 2106 into seconds by dividing by 1000 and hands the rest to
``datetime.fromtimestamp``, which raises inside aiormq's frame reader: the reader dies, the
connection with it, and the unacked message comes back on the next connection to kill it again.

``install()`` puts a lenient decoder into pamqp's own decoder tables (``pamqp.decode.METHODS``
for message properties, ``TABLE_MAPPING`` for header tables), process-wide and once. It decodes
every value pamqp decodes exactly as pamqp does; only a value that would raise is read as
milliseconds, microseconds or nanoseconds, or as a signed number, whichever gives a date; failing
all, it decodes as ``None`` (pigeon then takes the time of receipt).
"""

from __future__ import annotations

import datetime
import struct
from collections.abc import Callable
from typing import Any

import pamqp.decode

Decoder = Callable[[bytes], tuple[int, Any]]

_SCALES = (1, 1_000, 1_000_000, 1_000_000_000)
_UNSIGNED = struct.Struct(">Q")


def lenient_timestamp(strict: Decoder) -> Decoder:
    """``strict`` (pamqp's timestamp decoder), made to never raise for 8 bytes it can read."""

    def decode(value: bytes) -> tuple[int, Any]:
        try:
            return strict(value)
        except (ValueError, OverflowError, OSError):
            if len(value) < 8:
                raise
            return 8, guess_time(_UNSIGNED.unpack(value[:8])[0])

    decode.lenient = True  # type: ignore[attr-defined]
    return decode


def guess_time(raw: int) -> datetime.datetime | None:
    """The date ``raw`` most plausibly means (seconds, ms, µs or ns; signed), or ``None``."""
    signed = raw - 2**64 if raw >= 2**63 else raw
    for scale in _SCALES:
        try:
            return datetime.datetime.fromtimestamp(signed / scale, tz=datetime.UTC)
        except (ValueError, OverflowError, OSError):
            continue
    return None


def install() -> None:
    """Put the lenient timestamp decoder into pamqp's decoder tables (once; idempotent)."""
    methods: dict[str, Decoder] = pamqp.decode.METHODS
    table: dict[bytes, Decoder] = pamqp.decode.TABLE_MAPPING
    if not getattr(methods["timestamp"], "lenient", False):
        methods["timestamp"] = lenient_timestamp(methods["timestamp"])
    if not getattr(table[b"T"], "lenient", False):
        table[b"T"] = lenient_timestamp(table[b"T"])
