"""redis-py exceptions, translated into ``pigeon.errors`` at the transport's boundary.

Every call into redis-py runs inside ``translated(url, doing)``, as httpx's
``map_httpcore_exceptions`` does, so that no redis-py exception reaches a user: they arrive as the
``__cause__`` of a pigeon error that says what was being done, on which server (password masked)
and what to do about it.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager

from redis import exceptions as redis_errors

from pigeon.errors import BrokerError, MessageTooLarge, PigeonError

CLIENT_ERRORS: tuple[type[BaseException], ...] = (redis_errors.RedisError, OSError, TimeoutError)
"""What redis-py may raise; ``translated`` turns each into a ``PigeonError``."""


@contextmanager
def translated(url: str, doing: str) -> Iterator[None]:
    """Re-raise any redis-py (or socket) exception as a pigeon error; ``doing`` names the action."""
    try:
        yield
    except PigeonError:
        raise
    except CLIENT_ERRORS as exc:
        raise translate(exc, url, doing) from exc


def translate(
    exc: BaseException,
    url: str,
    doing: str,
    timeout: float | None = None,
    bound: str = "socket_timeout",
) -> PigeonError:
    """The pigeon error that stands for ``exc``, raised while ``doing`` on ``url``, whose
    client waits ``timeout`` seconds for an answer (named if given; ``bound``: the options that
    bound the wait, as the error names them)."""
    if isinstance(exc, PigeonError):
        return exc
    text = str(exc)
    if _is_auth_error(exc):
        return BrokerError(
            f"{doing}: {url} refused the login ({text}); check the user name and password in "
            "the URL (redis://user:password@host:6379/0)"
        )
    if isinstance(exc, redis_errors.NoPermissionError):
        return BrokerError(
            f"{doing}: the Redis user of {url} may not run this command ({text}); grant it the "
            "stream, pubsub, scripting and key commands on pigeon's key prefix (ACL SETUSER)"
        )
    if isinstance(exc, redis_errors.ReadOnlyError):
        return BrokerError(
            f"{doing}: {url} is a read-only replica; point the URL at the primary (or at a "
            "Sentinel-managed address that follows it)"
        )
    if isinstance(exc, redis_errors.OutOfMemoryError):
        return BrokerError(
            f"{doing}: {url} is out of memory (maxmemory reached) and refuses writes; consume or "
            "purge the backlog, or raise maxmemory (keep maxmemory-policy noeviction for queues)"
        )
    if isinstance(exc, redis_errors.BusyLoadingError):
        return BrokerError(f"{doing}: {url} is loading its data set after a restart; retry soon")
    if "max bulk" in text or "Protocol error: too big" in text:
        return MessageTooLarge(f"{doing}: the message is over {url}'s proto-max-bulk-len")
    if "No connection available" in text:
        return BrokerError(
            f"{doing}: every connection of the pool to {url} stayed busy for 30s; raise the "
            "App's max_connections, or send fewer commands at once"
        )
    if url.startswith("rediss://") and _is_handshake_error(exc, doing):
        reason = text or "timed out"
        return BrokerError(
            f"{doing}: the TLS handshake with {url} failed or did not finish ({reason}); is TLS "
            "enabled on that port? For a server without TLS, use redis://"
        )
    if isinstance(exc, redis_errors.ConnectionError | OSError):
        return BrokerError(
            f"{doing}: {url} is unreachable or the connection was lost ({text}); is Redis "
            "running there, and are the host and port right?"
        )
    if isinstance(exc, redis_errors.TimeoutError | TimeoutError):
        within = f" within {timeout:g}s" if timeout is not None else ""
        return BrokerError(
            f"{doing}: no answer from {url}{within} ({bound}); is it a Redis port, and "
            "is the server healthy and not overloaded (redis-cli ping)?"
        )
    if doing == "connecting":  # an answer, but not a Redis 6.2+ one
        return BrokerError(
            f"{doing}: {url} answered, but not as Redis 6.2 or later does ({_first_line(text)}); "
            "is it a Redis port, and a Redis of 6.2 or later?"
        )
    return BrokerError(f"{doing} on {url}: {text}")


def _first_line(text: str) -> str:
    """The first line of ``text``, cut at 120 characters (another server's banner can be long
    and tell things about it that need not be shown)."""
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= 120 else f"{line[:117]}..."


def _is_handshake_error(exc: BaseException, doing: str) -> bool:
    """Whether ``exc`` says TLS did not get going: an SSL error, or silence while connecting (a
    server without TLS waits for a command that a ClientHello never completes)."""
    if isinstance(exc, ssl.SSLError) or "SSL" in str(exc):
        return True
    return doing == "connecting" and isinstance(exc, redis_errors.TimeoutError | TimeoutError)


def _is_auth_error(exc: BaseException) -> bool:
    if isinstance(exc, redis_errors.AuthenticationError | redis_errors.AuthorizationError):
        return True
    text = str(exc)
    return isinstance(exc, redis_errors.ResponseError) and (
        text.startswith(("NOAUTH", "WRONGPASS")) or "invalid password" in text
    )


def is_missing_group(exc: BaseException) -> bool:
    """Whether ``exc`` says a stream or its consumer group does not exist (it was deleted)."""
    return isinstance(exc, redis_errors.ResponseError) and str(exc).startswith("NOGROUP")
