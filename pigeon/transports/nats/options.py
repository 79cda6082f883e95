"""The options of ``App("nats://...", **options)``: pigeon's own, checked and taken out, and the
rest, nats-py's ``connect`` keyword arguments, refused at ``App()`` unless nats-py takes them."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client

from pigeon.errors import ConfigurationError
from pigeon.transports.addresses import servers_of as checked_servers
from pigeon.transports.checks import seconds, unknown_options, whole_number
from pigeon.transports.nats import wire
from pigeon.transports.nats.jetstream import RETRY_BUDGET
from pigeon.transports.nats.services import Services, service_config
from pigeon.transports.nats.topology import ACK_WAIT

DEFAULTS: dict[str, Any] = {
    "connect_timeout": 2,
    "max_reconnect_attempts": -1,
    "reconnect_time_wait": 1,
    "ping_interval": 10,
    "max_outstanding_pings": 2,
}
"""nats-py options pigeon sets unless the App passes its own: reconnect for as long as it runs,
and find a server that stopped answering (frozen, or a path that drops everything) stale within
30 s (a PING every 10 s; the third unanswered one ends the connection), then reconnect, to
another server of the URL if it names several. nats-py's own defaults (2 minutes, 2 PINGs, as
the Go client's) left an App on a silent server, and ready, for 6 minutes."""

PENDING_LIMITS = ("pending_msgs_limit", "pending_bytes_limit")
"""Options of every core subscription: how many messages (bytes) nats-py buffers for a subscriber
before dropping (a slow consumer); nats-py's defaults are 512 Ki messages and 128 MiB."""

OWN = frozenset(
    {"replicas", "ack_wait", "reconnect_patience", "max_control_line", "service", "version"}
    | set(PENDING_LIMITS)
)
"""pigeon's own options of a NATS App (see ``NatsTransport``)."""

CLIENT_OPTIONS = frozenset(inspect.signature(Client.connect).parameters) - {"self", "servers"}
"""nats-py's ``connect`` keyword arguments (``servers`` comes from the URL)."""


@dataclass(frozen=True, slots=True)
class Options:
    """A NATS App's options, checked: pigeon's own, and ``client``'s for ``nats.connect``."""

    replicas: int
    ack_wait: float
    ack_wait_given: bool
    patience: float
    max_control_line: int
    pending_limits: dict[str, int]
    services: Services | None
    client: dict[str, Any]

    @classmethod
    def of(cls, options: dict[str, Any]) -> Options:
        """Check ``options``; ``ConfigurationError`` naming an unknown one (listing the valid
        ones) or a value out of range."""
        whose = "nats-py's connect() takes"
        if (error := unknown_options("NATS", options, OWN, CLIENT_OPTIONS, whose)) is not None:
            raise error
        given = dict(options)
        replicas = whole_number("replicas", given.pop("replicas", 1), 1, 5)
        ack_wait_given = "ack_wait" in given
        ack_wait = given.pop("ack_wait", ACK_WAIT)
        seconds("ack_wait", ack_wait)
        limits = {  # nats-py takes 0 or less as "no limit": refused
            name: whole_number(name, given.pop(name)) for name in PENDING_LIMITS if name in given
        }
        return cls(
            replicas=replicas,
            ack_wait=ack_wait,
            ack_wait_given=ack_wait_given,
            patience=seconds("reconnect_patience", given.pop("reconnect_patience", RETRY_BUDGET)),
            max_control_line=given.pop("max_control_line", wire.MAX_CONTROL_LINE),
            pending_limits=limits,
            services=_services(given.pop("service", None), given.pop("version", None)),
            client={**DEFAULTS, **given},
        )


def servers_of(url: str) -> list[str]:
    """The server URLs in ``url``: ``nats://u:p@a:4222,b:4222`` gives both with scheme and user
    (a comma in a password is the password's: see ``pigeon.transports.urls.servers``).

    Raises ``ConfigurationError`` for a server nats-py would read otherwise than pigeon, or
    cannot read (see ``pigeon.transports.addresses``): without a host, with a bad port, or
    with a user or password it would not send as meant.
    """
    return [server.url for server in checked_servers(url.rstrip(","))]


def _services(name: str | None, version: str | None) -> Services | None:
    """The NATS service the rpc handlers join, if the App names one."""
    if name is None:
        if version is not None:
            raise ConfigurationError(f"version={version!r} without service=: name the service")
        return None
    return Services(service_config(name, version))
