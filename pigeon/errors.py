"""One exception tree for everything pigeon raises.

Transports translate their client's exceptions (nats-py, aio-pika) into these at the seam, so no
broker client exception ever reaches user code::

    PigeonError
    ├── ConfigurationError      a mistake in code or settings, raised at the earliest moment
    │   └── DeclarationConflict a broker object exists with other settings
    ├── BrokerError             the broker cannot be reached, refused us, or went away
    ├── EncodeError             an object the codec cannot encode
    ├── DecodeError             a payload that cannot be decoded or validated
    ├── MessageTooLarge         a message over the broker's size limit
    ├── RequestError            a request that got no answer it could decode
    │   ├── RequestTimeout      the deadline passed
    │   ├── NoResponders        nobody serves the subject
    │   └── RemoteError         the handler raised, or the request failed its validation
    └── Reject                  raised by a handler: dead-letter this message now, never retry
"""

from __future__ import annotations


class PigeonError(Exception):
    """Base of every exception pigeon raises; catching it catches them all."""


class ConfigurationError(PigeonError):
    """A mistake in code or settings: a bad URL, handler signature or subject.

    Raised at the earliest moment (decoration, ``App(...)``, the call), never later in a handler.
    """


class DeclarationConflict(ConfigurationError):
    """A queue, stream or consumer already exists on the broker with different settings."""


class BrokerError(PigeonError):
    """The broker cannot be reached, refused the credentials, or the connection was lost."""

    @classmethod
    def not_connected(cls, url: str) -> BrokerError:
        """A call on a transport that is not connected (before start, after close)."""
        return cls(f"{url}: not connected; use 'async with app:' or 'app.run()'")


class EncodeError(PigeonError):
    """The codec cannot encode the object; the message names the object's type."""


class DecodeError(PigeonError):
    """A payload that cannot be decoded or validated into the handler's type.

    Work pools dead-letter such a message at once, RPC answers it with a ``RemoteError``, plain
    subscribers log and drop it. It is never retried.
    """


class MessageTooLarge(PigeonError):
    """The encoded message is over the broker's maximum payload size."""


class RequestError(PigeonError):
    """A request did not get a usable reply."""


class RequestTimeout(RequestError, TimeoutError):
    """The request's deadline passed before a reply arrived."""

    @classmethod
    def for_subject(cls, subject: str, timeout: float) -> RequestTimeout:
        """No reply from the server of ``subject`` within ``timeout`` seconds."""
        return cls(
            f"no reply from {subject!r} within {timeout:g}s; is its server running and fast "
            "enough? Raise the timeout or add replicas"
        )


class NoResponders(RequestError):
    """Nobody serves the requested subject; raised at once, without waiting for the deadline."""

    @classmethod
    def for_subject(cls, subject: str, url: str) -> NoResponders:
        """Nobody serves ``subject`` on the broker at ``url`` (masked)."""
        return cls(f"nobody serves {subject!r} on {url}; start its rpc handler")


class RemoteError(RequestError):
    """The remote handler raised, or the request failed validation there.

    ``type`` is the remote exception's class name (``"ServiceError"`` for an error reply of a
    NATS service that is not pigeon), ``message`` its text, ``code`` the reply's error code when
    it carried one: 400 for a request that failed decoding or validation, 500 for a handler that
    raised, or whatever a NATS service sent.
    """

    def __init__(
        self,
        type: str,  # noqa: A002 - the public attribute name
        message: str,
        code: int | None = None,
    ) -> None:
        super().__init__(f"{type}: {message}")
        self.type = type
        self.message = message
        self.code = code


class Reject(PigeonError):
    """Raise from a worker to dead-letter the current message at once, skipping every retry.

    ``reason`` is recorded as the dead letter's error message.
    """

    def __init__(self, reason: str = "rejected by handler") -> None:
        super().__init__(reason)
        self.reason = reason
