"""The servers a broker URL names, checked at ``App(...)`` so that pigeon and the client library
read each one alike.

pigeon shows a URL masked (``urls.mask_url``) and hands each server to its client: nats-py and
redis-py read it with ``urllib``, aio-pika with ``yarl``. Where they would read it otherwise
than pigeon does (a password with an unencoded ``/``, ``?`` or ``#`` ends the host part for the
clients, not for the mask), the App would connect to a host its errors do not name, and the
client's own logs would show the rest of the password; where they cannot read it at all, the
first connect would raise a traceback quoting part of it. ``servers_of`` refuses both kinds with
a ``ConfigurationError`` that names the fault, never the secret, and says what to write instead.
The ``Server`` it returns (host and port from the same split as the mask) is what the transport
connects to.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import NoReturn

from pigeon.errors import ConfigurationError
from pigeon.transports import urls

BROKERS = {
    "nats": "NATS",
    "tls": "NATS",
    "ws": "NATS",
    "wss": "NATS",
    "amqp": "RabbitMQ",
    "amqps": "RabbitMQ",
    "redis": "Redis",
    "rediss": "Redis",
}
"""The broker each scheme's servers belong to: one URL names servers of one broker."""

WEBSOCKET = frozenset({"ws", "wss"})
"""NATS over websockets: the App's URL is nats:// or tls://, and nats-py takes no mix."""

UNENCODED = "/?#[]\\"
"""Characters a user or password must hold percent-encoded: each ends or breaks the authority for
``urllib`` or ``yarl``. (``@`` and ``:`` need not be: every client takes the host after the last
``@`` and the password after the first ``:``, as the mask does.)"""

PERCENT_ENCODE = "percent-encode the user and password, e.g. urllib.parse.quote(password, safe='')"

NATS_OPTIONS = (
    "nats-py sends a URL's user and password as written (it does not decode %XX): leave them "
    "out of the URL and give App(url, user=..., password=...) (a token: token=...)"
)

_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PORT = re.compile(r"[0-9]{1,5}")


@dataclass(frozen=True, slots=True)
class Server:
    """One server of a broker URL, as its client reads it: ``url`` is what the client is given."""

    url: str
    scheme: str
    host: str
    port: int | None


def servers_of(url: str, several: bool = True) -> list[Server]:
    """Each server ``url`` names (``several=False``: the URL names one), checked.

    Raises ``ConfigurationError`` (URL masked) for a server whose user or password the client
    would read otherwise (an unencoded ``/ ? # [ ] \\``, a ``%`` that is no ``%XX``, any ``%`` in a
    NATS URL), a space or control character, an empty or malformed host, a port that is not a
    number from 1 to 65535, a scheme of another broker, or a NATS websocket server.
    """
    broker = _broker(url.partition("://")[0])
    parts = urls.servers(url) if several else [url]
    return [_checked(part, broker) for part in parts]


def _broker(scheme: str) -> str:
    return BROKERS.get(scheme.lower(), scheme.lower())


def _checked(server: str, broker: str) -> Server:
    scheme, _, rest = server.partition("://")
    if _broker(scheme) != broker:
        fault = f"a server of another broker ({scheme}://)"
        _refuse(server, broker, fault, f"give the servers of one {broker} cluster")
    if scheme.lower() in WEBSOCKET:  # nats-py refuses them beside nats:// ones, at connect
        _refuse(server, broker, "a websocket server", "give nats:// or tls:// servers only")
    if any(c.isspace() or not c.isprintable() for c in server):
        advice = NATS_OPTIONS if broker == "NATS" else PERCENT_ENCODE
        _refuse(server, broker, "a space or control character", f"remove it, or {advice}")
    userinfo, host_and_port, _ = urls.split_authority(rest)
    if userinfo is not None:
        _check_userinfo(server, broker, userinfo)
    host, port = _host_and_port(server, broker, host_and_port)
    return Server(server, scheme.lower(), host, port)


def _check_userinfo(server: str, broker: str, userinfo: str) -> None:
    """Refuse a user or password the client would read otherwise than the mask does."""
    advice = NATS_OPTIONS if broker == "NATS" else PERCENT_ENCODE
    for character in UNENCODED:
        if character in userinfo:
            if character in "/?#":  # or an '@' after it, in the path or query: which, unknown
                fault = (
                    f"an unencoded {character!r} in the user or password, which ends the host "
                    f"part for the client (or an '@' after a {character!r}, in the path or "
                    "query: write it %40)"
                )
            else:
                fault = (
                    f"an unencoded {character!r} in the user or password, which breaks the host "
                    "part for the client"
                )
            _refuse(server, broker, fault, advice)
    if "%" in userinfo and (broker == "NATS" or _ESCAPE.search(userinfo)):
        fault = "'%' in the user or password" if broker == "NATS" else "a '%' that is not %XX"
        if broker != "NATS":
            advice = f"write '%' as %25: {advice}"
        _refuse(server, broker, fault, advice)


def _host_and_port(server: str, broker: str, host_and_port: str) -> tuple[str, int | None]:
    """The host (an IPv6 address without its brackets) and port, both checked."""
    if host_and_port.startswith("["):
        literal, _, after = host_and_port[1:].partition("]")
        host, colon, port = literal, after[:1], after[1:]
        if not _is_ipv6(literal) or after[:1] not in ("", ":"):
            _refuse(server, broker, "a malformed IPv6 host", "give [address]:port")
    else:
        host, colon, port = host_and_port.partition(":")
        if not host:
            _refuse(server, broker, "no host", "give host:port after the '@'")
        if not all(c.isalnum() or c in "._-~" for c in host):
            _refuse(server, broker, "a malformed host", "give a host name or address, then :port")
    if not colon:
        return host, None
    if not _PORT.fullmatch(port) or not 0 < int(port) < 65536:
        _refuse(server, broker, "a port that is not a number from 1 to 65535", "give host:port")
    return host, int(port)


def _is_ipv6(literal: str) -> bool:
    try:
        ipaddress.IPv6Address(literal.partition("%")[0])
    except ValueError:
        return False
    return True


def _refuse(server: str, broker: str, fault: str, advice: str) -> NoReturn:
    raise ConfigurationError(f"bad {broker} URL {urls.mask_url(server)!r}: {fault}; {advice}")
