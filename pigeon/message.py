"""The wire form of a message (``Envelope``) and what a handler may ask for (``Message``)."""

from __future__ import annotations

import itertools
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from pigeon import headers as h

T = TypeVar("T")

_ID_PREFIX = os.urandom(8).hex()
_ID_SUFFIXES = [f"{low:02x}" for low in range(256)]


_batch: tuple[int, list[str]] = (0, [])
"""The batch being handed out, and its counter value."""


def _ids(high: int) -> list[str]:
    """The batch ``high``: its stem formatted once (per id, it cost ~700 instructions)."""
    stem = f"{_ID_PREFIX}{high:x}"
    return [stem + low for low in _ID_SUFFIXES]


def _id_batch(high: int) -> list[str]:
    global _batch
    ids = _ids(high)
    _batch = (high, ids)
    return ids


def _new_prefix_after_fork() -> None:
    """A forked child (``gunicorn --preload``, ``os.fork``) would hand out the parent's next ids
    (JetStream drops a second message with the same ``Nats-Msg-Id`` as a duplicate): give it a
    prefix of its own, and rewrite the batch being handed out in place, so the iterator goes on
    with ids of the new prefix."""
    global _ID_PREFIX
    _ID_PREFIX = os.urandom(8).hex()
    high, ids = _batch
    ids[:] = _ids(high)


os.register_at_fork(after_in_child=_new_prefix_after_fork)


new_id: Callable[[], str] = itertools.chain.from_iterable(
    map(_id_batch, itertools.count())
).__next__
"""Return an id unique across processes: a random per-process prefix and a counter in hex.

Ids are made 256 at a time and handed out by a C iterator: formatting a counter per message
cost about as much as building the rest of an envelope. Each batch has a stem of its own and
its suffixes a fixed width, so two batches never make the same id."""


@dataclass(slots=True)
class Envelope:
    """A message as it travels: an encoded body plus the metadata every transport carries.

    RabbitMQ carries the fields in native AMQP properties, NATS in message headers. ``headers``
    holds user headers and pigeon's own ``x-pigeon-*`` headers.
    """

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    message_id: str = field(default_factory=new_id)
    correlation_id: str | None = None
    reply_to: str | None = None
    timestamp: float = field(default_factory=time.time)

    @property
    def correlation(self) -> str:
        """The id a reply to this message carries: its correlation id, else its message id."""
        return self.correlation_id or self.message_id

    def with_headers(self, extra: dict[str, str]) -> Envelope:
        """Return a copy whose headers are this envelope's plus ``extra``."""
        return replace(self, headers={**self.headers, **extra})

    def without_headers(self, names: tuple[str, ...]) -> Envelope:
        """Return a copy without the named headers."""
        kept = {k: v for k, v in self.headers.items() if k not in names}
        return replace(self, headers=kept)


def new_envelope(body: bytes, headers: dict[str, str], content_type: str) -> Envelope:
    """A new envelope to send: a fresh message id, stamped now, no correlation id or reply
    address. Its slots are set here: calling ``Envelope(...)`` (a Python ``__init__`` called from
    C) costs about 800 instructions more, once per message sent."""
    envelope: Envelope = _new_object(Envelope)
    envelope.body = body
    envelope.headers = headers
    envelope.content_type = content_type
    envelope.message_id = new_id()
    envelope.correlation_id = None
    envelope.reply_to = None
    envelope.timestamp = time.time()
    return envelope


def envelope_of(
    body: bytes,
    headers: dict[str, str],
    content_type: str,
    message_id: str,
    correlation_id: str | None,
    reply_to: str | None,
    timestamp: float,
) -> Envelope:
    """``Envelope(...)`` with every field given, its slots set here (see ``new_envelope``): a
    received message's."""
    envelope: Envelope = _new_object(Envelope)
    envelope.body = body
    envelope.headers = headers
    envelope.content_type = content_type
    envelope.message_id = message_id
    envelope.correlation_id = correlation_id
    envelope.reply_to = reply_to
    envelope.timestamp = timestamp
    return envelope


_new_object = object.__new__


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a message was dead-lettered: kept in its headers, read back as ``Message.failure``.

    ``type`` and ``message`` name the error as ``RemoteError.type``/``.message`` do; ``attempts``
    counts handler calls, ``queue`` is the work queue, ``failed_at`` an aware UTC datetime.
    """

    type: str
    message: str
    attempts: int
    queue: str
    failed_at: datetime

    @property
    def error_type(self) -> str:
        """Deprecated: ``type``."""
        warnings.warn("Failure.error_type is deprecated: use .type", DeprecationWarning, 2)
        return self.type

    @property
    def error_message(self) -> str:
        """Deprecated: ``message``."""
        warnings.warn("Failure.error_message is deprecated: use .message", DeprecationWarning, 2)
        return self.message

    @classmethod
    def of(cls, error: BaseException, *, attempts: int, queue: str) -> Failure:
        """Describe ``error``, raised on the ``attempts``-th call for a message of ``queue``."""
        from pigeon.failures import describe  # failures imports this module

        return cls(type(error).__name__, describe(error), attempts, queue, datetime.now(UTC))

    def as_headers(self) -> dict[str, str]:
        """Encode as ``x-pigeon-*`` headers."""
        return {
            h.ERROR_TYPE: self.type,
            h.ERROR_MESSAGE: h.encode_text(self.message[:1000]),
            h.ATTEMPTS: str(self.attempts),
            h.QUEUE: self.queue,
            h.FAILED_AT: self.failed_at.isoformat(),
        }

    @classmethod
    def from_headers(cls, headers: dict[str, str]) -> Failure | None:
        """Decode from headers written by ``as_headers``; ``None`` if they hold no failure."""
        if h.ERROR_TYPE not in headers:
            return None
        return cls(
            type=headers[h.ERROR_TYPE],
            message=h.decode_text(headers.get(h.ERROR_MESSAGE, "")),
            attempts=int(headers.get(h.ATTEMPTS, "0") or 0),
            queue=headers.get(h.QUEUE, ""),
            failed_at=datetime.fromisoformat(headers[h.FAILED_AT])
            if h.FAILED_AT in headers
            else datetime.fromtimestamp(0, UTC),
        )


@dataclass(frozen=True, slots=True)
class Message:
    """The context of a received message, for a handler that declares a ``Message`` parameter.

    ``attempt`` counts handler calls for this message, 1 on the first, carried across broker-side
    redeliveries. ``failure`` is set on messages read from a dead-letter store, whose ``attempt``
    is 1 (no handler holds them): how many calls failed is ``failure.attempts``. Middleware also
    sees ``pattern`` (``subscribe``, ``rpc``, ``worker`` around handling; ``publish``, ``request``,
    ``enqueue`` around sending) and ``route``, the subject or queue a handler was declared with
    (wildcards kept, so it suits metric labels); both are empty elsewhere.
    """

    subject: str
    body: bytes
    headers: dict[str, str]
    content_type: str
    message_id: str
    correlation_id: str | None
    reply_to: str | None
    timestamp: float
    attempt: int = 1
    failure: Failure | None = None
    pattern: str = ""
    route: str = ""

    @classmethod
    def of(
        cls, envelope: Envelope, subject: str, attempt: int = 1, pattern: str = "", route: str = ""
    ) -> Message:
        """Build the context of ``envelope``, received on ``subject``; its headers are copied."""
        headers = envelope.headers
        failure = Failure.from_headers(headers) if h.ERROR_TYPE in headers else None
        return _message(envelope, subject, dict(headers), attempt, failure, pattern, route)

    @classmethod
    def outgoing(cls, envelope: Envelope, subject: str, pattern: str) -> Message:
        """The message of ``envelope``, about to be sent to ``subject`` by ``pattern``: it shares
        the envelope's headers (the envelope is the sender's own, built for this send)."""
        return _message(envelope, subject, envelope.headers, 1, None, pattern, subject)

    def envelope(self) -> Envelope:
        """The wire form of this message, with its (possibly changed) body and headers."""
        return Envelope(
            self.body,
            self.headers,
            self.content_type,
            self.message_id,
            self.correlation_id,
            self.reply_to,
            self.timestamp,
        )

    def decode(self, into: type[T]) -> T:
        """Decode the body into ``into`` with the codec its content type names.

        Raises ``DecodeError`` if the body does not fit.
        """
        from pigeon.codecs import decoder_for

        value: Any = decoder_for(into)(self.body, self.content_type, self.headers)
        return value  # type: ignore[no-any-return]


_SLOTS = tuple(getattr(Message, name).__set__ for name in Message.__dataclass_fields__)


def _message(
    envelope: Envelope,
    subject: str,
    headers: dict[str, str],
    attempt: int,
    failure: Failure | None,
    pattern: str,
    route: str,
) -> Message:
    """A ``Message`` with its slots set directly: a frozen dataclass's ``__init__`` goes through
    ``object.__setattr__`` for each field, about twice as slow, and middleware builds a
    ``Message`` on every send and every handler call."""
    message: Message = object.__new__(Message)
    (
        set_subject,
        set_body,
        set_headers,
        set_content_type,
        set_message_id,
        set_correlation_id,
        set_reply_to,
        set_timestamp,
        set_attempt,
        set_failure,
        set_pattern,
        set_route,
    ) = _SLOTS
    set_subject(message, subject)
    set_body(message, envelope.body)
    set_headers(message, headers)
    set_content_type(message, envelope.content_type)
    set_message_id(message, envelope.message_id)
    set_correlation_id(message, envelope.correlation_id)
    set_reply_to(message, envelope.reply_to)
    set_timestamp(message, envelope.timestamp)
    set_attempt(message, attempt)
    set_failure(message, failure)
    set_pattern(message, pattern)
    set_route(message, route)
    return message
