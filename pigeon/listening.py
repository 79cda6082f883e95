"""The ports ``pigeon run`` and ``pigeon docs serve`` listen on: bound before anything is said to
be served there, and a port that cannot be bound (in use, no permission, an unknown ``--bind``
address) is one ``ConfigurationError`` naming the option to change (exit 2, never restarted)."""

from __future__ import annotations

import errno
import os
import socket

from pigeon.errors import ConfigurationError


def bind(host: str, port: int, what: str, option: str) -> socket.socket:
    """A listening socket on ``host:port``; ``ConfigurationError`` saying it cannot serve
    ``what`` (``HTTP``, ``health``, ``metrics``) there and which ``option`` to change."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)  # an unknown name: say so
        return socket.create_server((host, port), family=family)
    except (OSError, OverflowError) as exc:
        raise cannot_serve(what, host, port, option, exc) from exc


def cannot_serve(
    what: str, host: str, port: int, option: str, exc: BaseException
) -> ConfigurationError:
    """The ``ConfigurationError`` for ``exc``, raised binding ``host:port`` for ``what``."""
    if isinstance(exc, socket.gaierror):
        reason, hint = str(exc.strerror), f"check the address {host!r}"
    elif isinstance(exc, OSError) and exc.errno:
        reason, hint = os.strerror(exc.errno), f"choose another {option}"
        if exc.errno == errno.EADDRNOTAVAIL:
            hint = f"check the address {host!r}"
    else:
        reason, hint = str(exc), f"choose another {option}"
    return ConfigurationError(f"cannot serve {what} on {host}:{port}: {reason}; {hint}")
