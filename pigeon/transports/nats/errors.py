"""nats-py exceptions, translated into ``pigeon.errors`` at the transport's boundary.

``translated(url, doing)`` wraps every call into nats-py, as httpx's ``map_httpcore_exceptions``
does, so that no nats-py exception reaches a user: they arrive as the ``__cause__`` of a pigeon
error that says what was being done, on which server (password masked), and what to do about it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from nats import errors as nats_errors

from pigeon.errors import BrokerError, ConfigurationError, MessageTooLarge, PigeonError


class JetStreamError(BrokerError):
    """The JetStream API answered with an error; ``code`` and ``err_code`` are the server's."""

    def __init__(self, description: str, code: int, err_code: int) -> None:
        super().__init__(description)
        self.description = description
        self.code = code
        self.err_code = err_code


STREAM_NOT_FOUND = 10059
NO_PEERS_FOR_PLACEMENT = 10005
CONSUMER_NOT_FOUND = 10014
NO_MESSAGE_FOUND = 10037
MSG_DELETE_FAILED = 10057
STREAM_NAME_IN_USE = 10058
SUBJECTS_OVERLAP = 10065
CONSUMER_EXISTS = 10148
CONSUMER_NAME_EXISTS = 10013


@contextmanager
def translated(url: str, doing: str) -> Iterator[None]:
    """Re-raise any nats-py (or socket) exception as a pigeon error; ``doing`` names the action."""
    try:
        yield
    except PigeonError:
        raise
    except (nats_errors.Error, OSError, TimeoutError) as exc:
        raise translate(exc, url, doing) from exc


def translate(exc: BaseException, url: str, doing: str) -> PigeonError:
    """The pigeon error that stands for ``exc``, raised while ``doing`` on ``url``."""
    if isinstance(exc, PigeonError):
        return exc
    if isinstance(exc, nats_errors.MaxPayloadError):
        return MessageTooLarge(f"{doing}: the message is over the server's max_payload")
    if isinstance(exc, nats_errors.BadHeaderError):
        return ConfigurationError(f"{doing}: header name {exc.key!r} is not allowed on NATS")
    if isinstance(exc, nats_errors.BadSubjectError):
        return ConfigurationError(f"{doing}: invalid NATS subject")
    if isinstance(exc, nats_errors.ConnectionClosedError):
        return BrokerError(f"{doing}: the connection to {url} is closed")
    if isinstance(exc, nats_errors.OutboundBufferLimitError):
        return BrokerError(
            f"{doing}: disconnected from {url} and the outgoing buffer is full; the server is "
            "down or unreachable (raise pending_size to buffer more while reconnecting)"
        )
    if isinstance(exc, TimeoutError):
        return BrokerError(f"{doing}: {url} did not answer in time; is the server overloaded?")
    if isinstance(exc, nats_errors.NoRespondersError):
        return BrokerError(f"{doing}: nothing on {url} answers this request")
    return BrokerError(f"{doing} on {url}: {exc}")
