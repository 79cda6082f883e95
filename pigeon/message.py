"""The wire form of a message (``Envelope``) and what a handler may ask for (``Message``)."""

from __future__ import annotations

import itertools
import os
import time
import warnings
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from pigeon import headers as h

T = TypeVar("T")

_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count()


def new_id() -> str:
    """Return an id unique across processes: a random per-process prefix and a counter."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):x}"


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
        message = str(error) or repr(error)
        return cls(type(error).__name__, message, attempts, queue, datetime.now(UTC))

    def as_headers(self) -> dict[str, str]:
        """Encode as ``x-pigeon-*`` headers."""
        return {
            h.ERROR_TYPE: self.type,
            h.ERROR_MESSAGE: self.message[:1000],
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
            message=headers.get(h.ERROR_MESSAGE, ""),
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
    redeliveries. ``failure`` is set on messages read from a dead-letter store.
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

    @classmethod
    def of(cls, envelope: Envelope, subject: str, attempt: int = 1) -> Message:
        """Build the context of ``envelope``, received on ``subject``."""
        return cls(
            subject=subject,
            body=envelope.body,
            headers=dict(envelope.headers),
            content_type=envelope.content_type,
            message_id=envelope.message_id,
            correlation_id=envelope.correlation_id,
            reply_to=envelope.reply_to,
            timestamp=envelope.timestamp,
            attempt=attempt,
            failure=Failure.from_headers(envelope.headers),
        )

    def decode(self, into: type[T]) -> T:
        """Decode the body into ``into`` with the codec its content type names.

        Raises ``DecodeError`` if the body does not fit.
        """
        from pigeon.codecs import decoder_for

        value: Any = decoder_for(into)(self.body, self.content_type, self.headers)
        return value  # type: ignore[no-any-return]
