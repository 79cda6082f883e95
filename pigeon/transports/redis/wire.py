"""How an ``Envelope`` travels on Redis, and back.

Two forms, one per kind of Redis data:

- **Jobs** (work-queue and dead-letter streams) are stream entries with one field per envelope
  field, readable with ``XRANGE`` and writable by any client: ``body``, ``content-type``,
  ``message-id``, ``correlation-id``, ``reply-to``, ``timestamp`` (seconds since the epoch), and
  every other field is a header. A header whose name is one of those fields (or pigeon's counts
  below, or starts with ``header:``) is written as ``header:<name>``, so every header arrives as
  it was sent. A plain client's ``XADD <queue> * body '{"n": 1}'`` is a job
  without a content type (read as JSON), a fresh message id, and the entry's time.
- **Events, requests and replies** (Pub/Sub messages and event streams) are one payload: ``MAGIC``,
  one line of JSON with the envelope's fields, then the body as it is. A payload without ``MAGIC``
  (a plain client's ``PUBLISH``) is all body.

pigeon's own counts ride in two fields of a job: ``x-pigeon-delivery`` (deliveries of earlier
copies, before a delayed redelivery) and ``x-pigeon-returns`` (those of them that ended unsettled).
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from pigeon import headers as h
from pigeon.errors import MessageTooLarge
from pigeon.message import Envelope, envelope_of, new_id

MAGIC = b"\x00pigeon1\n"
"""First bytes of a payload packed by ``pack``."""

BODY = "body"
CONTENT_TYPE = "content-type"
MESSAGE_ID = "message-id"
CORRELATION_ID = "correlation-id"
REPLY_TO = "reply-to"
TIMESTAMP = "timestamp"
DELIVERY = h.DELIVERY
RETURNS = h.RETURNS

_ENVELOPE_FIELDS = (BODY, CONTENT_TYPE, MESSAGE_ID, CORRELATION_ID, REPLY_TO, TIMESTAMP)
_RESERVED = frozenset(f.encode() for f in (*_ENVELOPE_FIELDS, DELIVERY, RETURNS))
HEADER = "header:"
"""Marks a field that carries a header whose bare name would be taken for something else."""

Fields = dict[str, str | bytes]

MAX_HEADERS = 1000
"""Most headers a job may have: its fields pass through Lua scripts (a delayed job's promotion,
a replay), and Lua cannot pass more than about 8,000 values to one command."""


def check_size(size: int, limit: int) -> None:
    """Raise ``MessageTooLarge`` if a message of ``size`` bytes is over ``limit``."""
    if size > limit:
        raise MessageTooLarge(
            f"the message is {size} bytes, over this App's max_message_size={limit}; send large "
            "data by reference (a URL or key), or raise max_message_size together with the "
            "server's client-output-buffer-limit for pubsub clients"
        )


def fields_size(fields: Fields) -> int:
    """Bytes of a job's field names and values."""
    return sum(len(name) + len(value) for name, value in fields.items())


# -- jobs: stream entries, a field per envelope field ------------------------------------------


def check_job(envelope: Envelope) -> None:
    """Raise ``MessageTooLarge`` if ``envelope`` has more than ``MAX_HEADERS`` headers."""
    if len(envelope.headers) > MAX_HEADERS:
        raise MessageTooLarge(
            f"the job has {len(envelope.headers)} headers; a Redis job carries at most "
            f"{MAX_HEADERS} headers (its fields pass through Lua scripts): move the data into "
            "the body"
        )


def job_fields(envelope: Envelope, *, deliveries: int = 0, returns: int = 0) -> Fields:
    """The stream-entry fields that carry ``envelope``, with pigeon's counts when non-zero."""
    fields: Fields = {BODY: envelope.body, MESSAGE_ID: envelope.message_id}
    if envelope.content_type:
        fields[CONTENT_TYPE] = envelope.content_type
    if envelope.correlation_id:
        fields[CORRELATION_ID] = envelope.correlation_id
    if envelope.reply_to:
        fields[REPLY_TO] = envelope.reply_to
    fields[TIMESTAMP] = repr(envelope.timestamp)
    if deliveries:
        fields[DELIVERY] = str(deliveries)
    if returns:
        fields[RETURNS] = str(returns)
    for name, value in envelope.headers.items():
        fields[_field_of(name)] = value
    return fields


def _field_of(header: str) -> str:
    if header.encode() in _RESERVED or header.startswith(HEADER):
        return HEADER + header
    return header


def job_of(entry_id: bytes, fields: dict[bytes, bytes]) -> tuple[Envelope, int, int]:
    """The envelope of a stream entry, with the deliveries and returns of its earlier copies.

    Any client writes these fields, so odd ones are read as RabbitMQ's foreign properties are: a
    ``timestamp`` that is no finite number is the entry's time, a count that is no whole number
    of at least 0 is 0. Never raises.
    """
    headers: dict[str, str] = {}
    for name, value in fields.items():
        if name not in _RESERVED:
            header = name.decode("utf-8", "replace").removeprefix(HEADER)
            headers[header] = value.decode("utf-8", "replace")
    stamp = _float(fields.get(TIMESTAMP.encode()))
    envelope = Envelope(
        fields.get(BODY.encode(), b""),
        headers,
        _text(fields.get(CONTENT_TYPE.encode())) or "",
        _text(fields.get(MESSAGE_ID.encode())) or new_id(),
        _text(fields.get(CORRELATION_ID.encode())),
        _text(fields.get(REPLY_TO.encode())),
        entry_time(entry_id) if stamp is None else stamp,
    )
    deliveries = _count(fields.get(DELIVERY.encode()))
    returns = _count(fields.get(RETURNS.encode()))
    return envelope, deliveries, returns


def _float(value: bytes | None) -> float | None:
    """``value`` as a finite number, or ``None`` if it is none."""
    try:
        number = float(value) if value else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


def _count(value: bytes | None) -> int:
    """``value`` as a count: a whole number of at least 0, else 0."""
    try:
        return max(0, int(value)) if value else 0
    except ValueError:
        return 0


def entry_time(entry_id: bytes) -> float:
    """The time (seconds since the epoch) Redis stored the stream entry ``entry_id``."""
    return int(entry_id.split(b"-", 1)[0]) / 1000


# -- events, requests and replies: one payload -------------------------------------------------


def pack(envelope: Envelope) -> bytes:
    """``envelope`` as one Pub/Sub payload (or event-stream field)."""
    meta: dict[str, Any] = {"id": envelope.message_id, "ts": envelope.timestamp}
    if envelope.content_type:
        meta["ct"] = envelope.content_type
    if envelope.correlation_id:
        meta["cid"] = envelope.correlation_id
    if envelope.reply_to:
        meta["rt"] = envelope.reply_to
    if envelope.headers:
        meta["h"] = envelope.headers
    line = json.dumps(meta, separators=(",", ":"), ensure_ascii=False).encode()
    return b"".join((MAGIC, line, b"\n", envelope.body))


def unpack(payload: bytes) -> Envelope:
    """The envelope of a payload; one without ``MAGIC`` (a plain client's) is all body.

    A payload that starts with ``MAGIC`` but whose metadata does not parse, or holds a field of
    another type than ``pack`` writes (``h`` not an object of strings, ``ts`` not a finite
    number, ``id``, ``ct``, ``cid`` or ``rt`` not a string; ``null`` is an absent field), is
    also taken as all body, so that the handler sees it and fails to decode it, rather than the
    transport. Never raises.
    """
    if payload.startswith(MAGIC):
        end = payload.find(b"\n", len(MAGIC))
        meta = _meta(payload[len(MAGIC) : end]) if end > 0 else None
        if meta is not None:
            stamp = meta.get("ts")
            return envelope_of(
                payload[end + 1 :],
                meta.get("h") or {},
                meta.get("ct") or "",
                meta.get("id") or new_id(),
                meta.get("cid"),
                meta.get("rt"),
                time.time() if stamp is None else stamp,
            )
    return envelope_of(payload, {}, "", new_id(), None, None, time.time())


_TEXT_FIELDS = ("id", "ct", "cid", "rt")


def _meta(line: bytes) -> dict[str, Any] | None:
    """The metadata of a payload, or ``None`` if ``line`` is not metadata ``pack`` could have
    written (see ``unpack``); its ``ts``, if any, made a float."""
    try:
        meta = json.loads(line)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past the stack
        return None
    if type(meta) is not dict:
        return None
    for name in _TEXT_FIELDS:
        value = meta.get(name)
        if value is not None and type(value) is not str:
            return None
    stamp = meta.get("ts")
    if stamp is not None and not (type(stamp) is float and math.isfinite(stamp)):
        seconds = _seconds(stamp)
        if seconds is None:
            return None
        meta["ts"] = seconds
    headers = meta.get("h")
    if headers is not None and not _all_text(headers):
        return None
    return meta


def _seconds(value: object) -> float | None:
    """``value`` as a finite number of seconds, or ``None`` if it is no such number."""
    if type(value) is not int and type(value) is not float:  # a bool is no time
        return None
    try:
        seconds = float(value)
    except OverflowError:  # an integer past a float's range
        return None
    return seconds if math.isfinite(seconds) else None


def _all_text(headers: object) -> bool:
    """Whether ``headers`` is an object of strings (JSON's keys are)."""
    return type(headers) is dict and all(type(value) is str for value in headers.values())


def _text(value: bytes | None) -> str | None:
    return value.decode("utf-8", "replace") if value else None
