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
import time
from typing import Any

from pigeon import headers as h
from pigeon.errors import MessageTooLarge
from pigeon.message import Envelope, new_id

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
    """The envelope of a stream entry, with the deliveries and returns of its earlier copies."""
    headers: dict[str, str] = {}
    for name, value in fields.items():
        if name not in _RESERVED:
            header = name.decode("utf-8", "replace").removeprefix(HEADER)
            headers[header] = value.decode("utf-8", "replace")
    stamp = fields.get(TIMESTAMP.encode())
    envelope = Envelope(
        fields.get(BODY.encode(), b""),
        headers,
        _text(fields.get(CONTENT_TYPE.encode())) or "",
        _text(fields.get(MESSAGE_ID.encode())) or new_id(),
        _text(fields.get(CORRELATION_ID.encode())),
        _text(fields.get(REPLY_TO.encode())),
        float(stamp) if stamp else entry_time(entry_id),
    )
    deliveries = int(fields.get(DELIVERY.encode(), b"0") or 0)
    returns = int(fields.get(RETURNS.encode(), b"0") or 0)
    return envelope, deliveries, returns


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

    A payload that starts with ``MAGIC`` but whose metadata does not parse is also taken as all
    body, so that the handler sees it and fails to decode it, rather than the transport.
    """
    if payload.startswith(MAGIC):
        end = payload.find(b"\n", len(MAGIC))
        try:
            meta = json.loads(payload[len(MAGIC) : end]) if end > 0 else None
        except ValueError:
            meta = None
        if isinstance(meta, dict):
            return Envelope(
                payload[end + 1 :],
                dict(meta.get("h") or {}),
                meta.get("ct", ""),
                meta.get("id") or new_id(),
                meta.get("cid"),
                meta.get("rt"),
                float(meta.get("ts") or time.time()),
            )
    return Envelope(payload, {}, "", new_id(), None, None, time.time())


def _text(value: bytes | None) -> str | None:
    return value.decode("utf-8", "replace") if value else None
