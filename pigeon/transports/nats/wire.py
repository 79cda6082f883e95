"""How an ``Envelope`` travels as a NATS message, and back.

Envelope fields ride in NATS headers, and only those the receiver cannot infer, because nats-py
builds and parses every header line in Python, a few microseconds per message each:

- ``Nats-Msg-Id``: the message id, on everything but replies (JetStream drops a retried publish
  with the same id). A message without one (a plain client's) gets a fresh id on receipt.
- ``content-type``: always. A message without one (a plain client's) has no content type, which
  the codecs read as the handler's natural format (JSON, or Protobuf for a protobuf class).
- ``correlation_id``: only when set and different from the message id; never on a reply, which
  NATS correlates by its inbox subject.
- the user's headers and pigeon's ``x-pigeon-*`` headers, as they are.
- on an error reply, also the NATS services protocol's ``Nats-Service-Error`` (the text) and
  ``Nats-Service-Error-Code`` (400 or 500), so that nats.js, nats-py ``nats.micro`` clients and
  the ``nats`` CLI see a service error.

The timestamp is not sent: a JetStream delivery takes the time the stream stored the message, a
core NATS delivery (which is immediate) the time it was received. Header names follow FastStream's
NATS conventions, so the two interoperate.
"""

from __future__ import annotations

import base64
import time
from datetime import datetime
from typing import Any

from pigeon import headers as h
from pigeon.errors import ConfigurationError, MessageTooLarge
from pigeon.message import Envelope, envelope_of, new_id

MSG_ID = "Nats-Msg-Id"
CONTENT_TYPE = "content-type"
CORRELATION_ID = "correlation_id"
ORIGINAL_ID = h.MESSAGE_ID
"""The message id, on dead letters and replays, whose ``Nats-Msg-Id`` is a de-duplication key."""

USER_ESCAPE = "x-pigeon-user-"
"""Prefix of a user header named like a field of this wire (``WIRE_NAMES``), one NATS reserves
(``Nats-*``: ``Nats-Expected-Stream`` and the like change what JetStream does with a message) or
starting with the prefix itself: it travels as prefix + name and is read back without it, so it
arrives as sent instead of being taken for the field (a user ``content-type`` header was
dropped). The content type is read whatever the case of its name (``Content-Type`` from other
clients), so a user header of that name in any case is escaped too."""
WIRE_NAMES = frozenset({CONTENT_TYPE, CORRELATION_ID})
NATS_PREFIX = "nats-"
"""Header names NATS reserves, in lower case (``Nats-Msg-Id``, ``Nats-Expected-Stream``, ...)."""

_HEADER_BLOCK_START = b"NATS/1.0"

MAX_CONTROL_LINE = 4096
"""The NATS server's default ``max_control_line``: a client that sends a longer command line
(``HPUB <subject> <reply> <sizes>``, ``SUB <subject> <group> <sid>``) gets ``-ERR`` and is
disconnected, so pigeon checks every line before sending it."""

INBOX_BYTES = 64
"""Room for the reply subject nats-py adds to a request (``_INBOX.<id>.<token>``)."""

LINE_OVERHEAD = 40
"""The command, spaces, sizes and CRLF of a control line."""


def check_control_line(subject: str, reserve: int = 0, limit: int = MAX_CONTROL_LINE) -> None:
    """Raise ``ConfigurationError`` unless a command line with ``subject`` and ``reserve`` bytes
    more (a reply subject, a queue group) fits in the server's ``limit``."""
    if len(subject) * 4 + reserve + LINE_OVERHEAD <= limit:
        return
    size = len(subject.encode()) + reserve + LINE_OVERHEAD
    if size > limit:
        raise ConfigurationError(
            f"subject {subject[:40]!r}... ({len(subject.encode())} bytes) does not fit in the "
            f"NATS server's {limit}-byte control line with its reply subject or queue group; "
            "use a shorter subject (or raise max_control_line on the server and pass "
            "max_control_line= to the App)"
        )


def outgoing(envelope: Envelope, *, reply: bool = False) -> dict[str, str]:
    """The NATS headers that carry ``envelope`` (its body travels as the payload).

    A reply carries no message id: it goes to one caller's inbox, never to a stream.
    """
    headers = _escaped(envelope.headers) if envelope.headers else {}
    if not reply:
        headers[MSG_ID] = envelope.message_id
    if envelope.content_type:
        headers[CONTENT_TYPE] = envelope.content_type
    correlation_id = envelope.correlation_id
    if correlation_id and not reply and correlation_id != envelope.message_id:
        headers[CORRELATION_ID] = correlation_id
    if reply and h.ERROR_CODE in headers:
        text = " ".join(h.decode_text(headers.get(h.ERROR_MESSAGE, "")).split())  # one line
        headers[h.SERVICE_ERROR] = text or headers[h.ERROR_CODE]
        headers[h.SERVICE_ERROR_CODE] = headers[h.ERROR_CODE]
    return headers


_BLOCK_START = b"NATS/1.0\r\n"
_ID_HEAD = _BLOCK_START + f"{MSG_ID}: ".encode()
_DEADLINE_HEAD = _BLOCK_START + f"{h.DEADLINE}: ".encode()
_ID_LINE = f"\r\n{MSG_ID}: ".encode()
_NEWLINES = str.maketrans({"\r": " ", "\n": " "})
_tails: dict[str, bytes] = {}
"""Content type -> the end of an event's header block after its message id (bounded)."""


def plain_block(envelope: Envelope, *, reply: bool = False) -> bytes | None:
    """The NATS header block of the usual message, built without the dict: an event or a
    request that carries only its message id, content type and (a request) its deadline, or a
    reply that carries only its content type; values that need no cleaning. The bytes nats-py
    (and ``PigeonClient.header_block``) make of ``outgoing(envelope, reply=reply)``. ``None``
    for any other message (build it from ``outgoing``)."""
    headers = envelope.headers
    deadline = None
    if headers:
        deadline = headers.get(h.DEADLINE)
        if reply or len(headers) != 1 or deadline is None or not _clean(deadline):
            return None
    content_type = envelope.content_type
    tail = _tails.get(content_type)
    if tail is None:
        if not content_type:
            return None
        tail = _tail(content_type)
    if reply:
        return _BLOCK_START + tail[2:]
    message_id = envelope.message_id
    correlation_id = envelope.correlation_id
    if (
        (correlation_id and correlation_id != message_id)
        or not (message_id.isascii() and message_id.isprintable())
        or message_id.strip() != message_id
    ):  # _clean(message_id), inline on the hot path
        return None
    if deadline is None:
        return b"".join((_ID_HEAD, message_id.encode(), tail))
    return b"".join((_DEADLINE_HEAD, deadline.encode(), _ID_LINE, message_id.encode(), tail))


def _clean(value: str) -> bool:
    """Whether nats-py sends header ``value`` as it is (nothing to strip or replace)."""
    return value.isascii() and value.isprintable() and value.strip() == value


def check_block(body: bytes, block: bytes, limit: int) -> None:
    """Raise ``MessageTooLarge`` if ``body`` and header ``block`` are over the server's
    ``max_payload``, ``limit`` (the server would close the connection)."""
    size = len(body) + len(block)
    if size > limit:
        raise too_large(size, limit)


def _tail(content_type: str) -> bytes:
    """What follows the message id in ``event_block``: the content type line (its value cleaned
    as nats-py cleans header values) and the blank line ending the block."""
    value = content_type.strip().translate(_NEWLINES)
    tail = f"\r\n{CONTENT_TYPE}: {value}\r\n\r\n".encode()
    if len(_tails) >= 64:
        _tails.clear()
    _tails[content_type] = tail
    return tail


def _escaped(user: dict[str, str]) -> dict[str, str]:
    """A copy of ``user`` headers, those named like a wire field escaped (``USER_ESCAPE``)."""
    if not any(map(_taken, user)):
        return dict(user)
    return {USER_ESCAPE + name if _taken(name) else name: value for name, value in user.items()}


def _taken(name: str) -> bool:
    """Whether a user header ``name`` must travel escaped (see ``USER_ESCAPE``)."""
    return (
        name in WIRE_NAMES
        or name[:5].lower() == NATS_PREFIX
        or name.startswith(USER_ESCAPE)
        or (len(name) == len(CONTENT_TYPE) and name.lower() == CONTENT_TYPE)
    )


def _unescaped(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` with ``_escaped`` undone, once the wire's own fields are taken out."""
    for name in headers:
        if name.startswith(USER_ESCAPE):
            break
    else:  # none escaped, the common case: no copy
        return headers
    cut = len(USER_ESCAPE)
    return {n[cut:] if n.startswith(USER_ESCAPE) else n: v for n, v in headers.items()}


def incoming(
    data: bytes, headers: dict[str, str] | None, reply_to: str | None, timestamp: float
) -> Envelope:
    """The envelope of a received message; ``headers`` is consumed (it becomes the envelope's)."""
    if not headers:
        return envelope_of(data, {}, "", new_id(), None, reply_to or None, timestamp)
    message_id = headers.pop(MSG_ID, None)
    content_type = headers.pop(CONTENT_TYPE, "") or _content_type(headers)
    if not headers and message_id and not reply_to:  # pigeon's usual event: nothing else
        return envelope_of(data, headers, content_type, message_id, None, None, timestamp)
    original = headers.pop(ORIGINAL_ID, None)
    correlation_id = headers.pop(CORRELATION_ID, None)
    message_id = original or message_id or new_id()
    if reply_to and correlation_id is None:  # a request: sent without it when it is the id
        correlation_id = message_id
    return envelope_of(
        data,
        _unescaped(headers),
        content_type,
        message_id,
        correlation_id,
        reply_to or None,
        timestamp,
    )


def _content_type(headers: dict[str, str]) -> str:
    """The value of a header ``Content-Type`` in another case (``CONTENT-TYPE``, as other
    clients may write it), taken out of ``headers``; ``""`` if there is none."""
    for name in headers:
        if len(name) == len(CONTENT_TYPE) and name.lower() == CONTENT_TYPE:
            return headers.pop(name)
    return ""


def received(msg: Any) -> Envelope:
    """The envelope of a core NATS message (a ``nats.aio.msg.Msg``)."""
    return incoming(msg.data, msg.headers, msg.reply, time.time())


MAX_HEADER_BLOCK = 65_535
"""The largest header block nats-server's JetStream stores: a larger one is refused, and a core
publish of it never reaches a stream (lost for durable subscribers), so every send is held to
it."""


def check_size(body: bytes, headers: dict[str, str], limit: int, reserve: int = 0) -> None:
    """Raise ``MessageTooLarge`` if body plus headers exceed ``limit`` (``max_payload``), or the
    header block ``MAX_HEADER_BLOCK``, with ``reserve`` bytes more of headers (a job: what its
    dead letter adds, see ``dead_letters.room``).

    The server counts headers against ``max_payload`` and drops the connection of a client that
    sends more, so this is checked before anything is sent. The count starts from a bound on
    the headers' size (UTF-8 takes at most 4 bytes a character), exact only near a limit.
    """
    chars = sum(map(len, headers)) + sum(map(len, headers.values())) + len(headers)
    rough = 4 * chars + 12 + reserve  # header_block_size is at most this
    if len(body) + rough <= limit and rough <= MAX_HEADER_BLOCK:
        return
    block = header_block_size(headers)
    if block + reserve > MAX_HEADER_BLOCK:
        raise _headers_too_large(block, reserve)
    size = len(body) + block
    if size + reserve > limit:
        raise too_large(size, limit, reserve)


def excess(body: bytes, headers: dict[str, str], limit: int) -> int:
    """Bytes by which a message is over ``max_payload`` ``limit`` or ``MAX_HEADER_BLOCK`` (0 if
    it fits)."""
    block = header_block_size(headers)
    return max(0, len(body) + block - limit, block - MAX_HEADER_BLOCK)


def too_large(size: int, limit: int, reserve: int = 0) -> MessageTooLarge:
    """The error for a message of ``size`` bytes (body and header block) over ``limit``, with
    ``reserve`` bytes kept for its dead letter (a job)."""
    if reserve:
        return MessageTooLarge(
            f"job of {size} bytes (body and headers) leaves no room for its dead letter within "
            f"the NATS server's max_payload of {limit} bytes: a dead letter adds up to {reserve} "
            f"bytes of failure headers, so a job may take at most {limit - reserve} bytes; send "
            "a smaller body (or a reference to the data), or raise max_payload in the server's "
            "configuration"
        )
    return MessageTooLarge(
        f"message of {size} bytes (body and headers) is over the NATS server's max_payload "
        f"of {limit} bytes; send a smaller body (or a reference to the data), or raise "
        "max_payload in the server's configuration"
    )


def _headers_too_large(block: int, reserve: int) -> MessageTooLarge:
    kept = f", with {reserve} bytes kept for its dead letter's failure headers" if reserve else ""
    return MessageTooLarge(
        f"the message's headers take {block} bytes on NATS (pigeon's own included{kept}), over "
        f"the {MAX_HEADER_BLOCK:,} bytes of the largest header block nats-server stores; carry "
        "large values in the body"
    )


def header_block_size(headers: dict[str, str]) -> int:
    """Bytes of the NATS header block that carries ``headers``."""
    return 12 + sum(len(k.encode()) + len(v.encode()) + 4 for k, v in headers.items())


def parse_header_block(raw: bytes) -> dict[str, str]:
    """Parse a ``NATS/1.0`` header block, as found base64-encoded in a stored message."""
    headers: dict[str, str] = {}
    for line in raw.split(b"\r\n"):
        if not line or line.startswith(_HEADER_BLOCK_START):
            continue
        name, sep, value = line.partition(b":")
        if sep:
            headers[name.strip().decode("utf-8", "replace")] = value.strip().decode(
                "utf-8", "replace"
            )
    return headers


def stored(message: dict[str, Any]) -> tuple[Envelope, int]:
    """The envelope and stream sequence of a message read from a stream by the JetStream API."""
    raw_headers = base64.b64decode(message["hdrs"]) if message.get("hdrs") else b""
    data = base64.b64decode(message["data"]) if message.get("data") else b""
    stored_at = datetime.fromisoformat(message["time"]).timestamp() if "time" in message else 0.0
    envelope = incoming(data, parse_header_block(raw_headers), None, stored_at)
    return envelope, int(message["seq"])
