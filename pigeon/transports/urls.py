"""URLs as pigeon shows them, and the servers a URL names.

``mask_url`` hides every credential of every server (passwords, NATS tokens, secret query
parameters): use it wherever a URL is shown (``repr``, logs, errors, documents). ``servers``
splits a URL that names several servers, in the forms users write:
``amqp://u:p@h1:5672,h2:5672,h3:5672/vhost`` and ``nats://h1:4222,nats://h2:4222``.
"""

from __future__ import annotations

import re

from pigeon.errors import ConfigurationError

MASK = "***"

TOKEN_SCHEMES = frozenset({"nats", "tls", "ws", "wss"})
"""Schemes whose user part alone (``nats://TOKEN@host``) is a secret: NATS's token auth."""

_SECRET_PARAMETER = re.compile(
    r"(?i)([?&;](?:password|passwd|pwd|pass|token|auth_token|access_token|secret|api_key)=)"
    r"[^&;#]*"
)


def mask_url(url: str) -> str:
    """``url`` with every credential of every server replaced by ``***``: passwords, tokens
    (``nats://TOKEN@host``) and secret query parameters. Safe for logs, errors and documents.
    Text without ``://`` (a mistyped URL) loses everything before its last ``@``."""
    scheme, sep, rest = url.partition("://")
    if not sep:  # not a URL (nats//u:p@h, u:p@h): hide all before the last '@'
        before, at_sign, host = url.rpartition("@")
        return f"{MASK}@{host}" if at_sign and before else url
    masked = [_mask_server(part, scheme.lower()) for part in _server_parts(rest)]
    return _SECRET_PARAMETER.sub(rf"\g<1>{MASK}", f"{scheme}://{','.join(masked)}")


def _server_parts(rest: str) -> list[str]:
    """``rest`` (a URL after ``scheme://``) split at the commas between servers, not at those of
    a password: a host never holds ``@``, so commas before the last ``@`` of a server's own part
    (up to the next ``scheme://``) belong to its credentials."""
    groups: list[list[str]] = []
    for piece in rest.split(","):
        if not groups or "://" in piece:
            groups.append([piece])
        else:
            groups[-1].append(piece)
    parts: list[str] = []
    for group in groups:
        last_at = max((i for i, piece in enumerate(group) if "@" in piece), default=0)
        parts += [",".join(group[: last_at + 1]), *group[last_at + 1 :]]
    return parts


def _mask_server(part: str, scheme: str) -> str:
    """One comma-separated part of a URL (with or without its own ``scheme://``), masked."""
    own_scheme, sep, rest = part.partition("://")
    if sep:
        scheme = own_scheme.lower()
        prefix = f"{own_scheme}://"
    else:
        prefix, rest = "", part
    userinfo, host, tail = split_authority(rest)
    if userinfo is None:
        return f"{prefix}{_masked_port(host)}{tail}"
    user, colon, _ = userinfo.partition(":")
    if colon:
        userinfo = f"{user}:{MASK}"
    elif scheme in TOKEN_SCHEMES:
        userinfo = MASK
    return f"{prefix}{userinfo}@{host}{tail}"


def split_authority(rest: str) -> tuple[str | None, str, str]:
    """``(userinfo, host_and_port, tail)`` of one server's URL after ``scheme://``; ``userinfo``
    is ``None`` without an ``@``. The authority ends at the first ``/``, ``?`` or ``#`` after the
    last ``@``, so a password with an unencoded ``/`` or ``#`` is still taken whole: the mask
    hides it all, and ``pigeon.transports.addresses`` refuses it (the clients would read the
    host elsewhere)."""
    authority_end = _first_of(rest, "/?#", rest.rfind("@") + 1)
    userinfo, at_sign, host = rest[:authority_end].rpartition("@")
    return (userinfo if at_sign else None), host, rest[authority_end:]


def _masked_port(host_and_port: str) -> str:
    """``host:port``, with a port that is not a number masked: ``amqp://user:pw/`` (the ``@``
    and host forgotten) must not show ``pw``."""
    host, colon, port = host_and_port.rpartition(":")
    if not colon or not port or port.isdigit() or "]" in port:
        return host_and_port
    return f"{host}:{MASK}"


def servers(url: str) -> list[str]:
    """Each server ``url`` names, as a URL of its own with the scheme, credentials, path and
    query of the first: ``amqp://u:p@a:1,b:2/v`` gives ``amqp://u:p@a:1/v`` and
    ``amqp://u:p@b:2/v``; ``nats://a:1,nats://b:2`` gives both as they are.

    Raises ``ConfigurationError`` (URL masked) for an empty server.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or "," not in rest:
        return [url]
    parts = [part.strip() for part in _server_parts(rest)]
    if len(parts) == 1:  # the commas were a password's
        return [url]
    if not all(parts):
        raise ConfigurationError(
            f"bad URL {mask_url(url)!r}: an empty server between commas; give "
            f"{scheme}://host:port,host:port"
        )
    last = parts[-1]
    if "://" in last:  # nats://a:1,nats://b:2: each part is a URL already
        rest_of = [p if "://" in p else f"{scheme}://{p}" for p in parts[1:]]
        return [f"{scheme}://{parts[0]}", *rest_of]
    cut = _first_of(last, "/?#")
    hosts, tail = [*parts[:-1], last[:cut]], last[cut:]
    userinfo, at_sign, first = hosts[0].rpartition("@")
    credentials = f"{userinfo}@" if at_sign else ""
    hosts[0] = first
    return [f"{scheme}://{credentials}{host}{tail}" for host in hosts]


def _first_of(text: str, characters: str, start: int = 0) -> int:
    """The index of the first of ``characters`` in ``text`` from ``start``, else its length."""
    found = [i for i in (text.find(c, start) for c in characters) if i != -1]
    return min(found, default=len(text))
