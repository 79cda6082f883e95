"""Failover across the nodes of a RabbitMQ cluster, on aio-pika's robust connection.

aio-pika reconnects to the one URL it was given. ``failover_class(hosts, start)`` makes a
``RobustConnection`` whose every connection attempt goes to the next host (aio-pika clears the
connection's ``transport`` at the start of each attempt; that is where the host turns), so when
a node dies the App reconnects to a live one, and aio-pika restores channels, queues, bindings
and consumers there as it would on the same node.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aio_pika import RobustConnection

from pigeon.transports.addresses import Server

log = logging.getLogger("pigeon")

Host = tuple[str, int]


class FailoverConnection(RobustConnection):
    """A robust connection that tries its ``hosts`` in turn, from ``start``; credentials,
    virtual host and query come from the URL it was made with."""

    hosts: tuple[Host, ...] = ()
    start = 0

    @property
    def transport(self) -> Any:
        return self.__dict__.get("_transport")

    @transport.setter
    def transport(self, value: Any) -> None:
        self.__dict__["_transport"] = value
        if value is None and self.hosts and "url" in self.__dict__:
            self._turn()

    def _turn(self) -> None:
        """Point the next connection attempt at the next host."""
        index = self.__dict__.get("_next", self.start)
        host, port = self.hosts[index % len(self.hosts)]
        self.__dict__["_next"] = index + 1
        if index != self.start and not self._close_called:
            log.info("pigeon: RabbitMQ: connecting to %s:%d", host, port)
        self.url = self.url.with_host(host).with_port(port)

    @property
    def server(self) -> str:
        """``host:port`` of the node this connection is on (or tries next)."""
        return f"{self.url.host}:{self.url.port}"


def failover_class(hosts: list[Host], start: int) -> type[FailoverConnection]:
    """A ``FailoverConnection`` class over ``hosts``, first trying ``hosts[start]``."""
    return type(
        "FailoverConnection", (FailoverConnection,), {"hosts": tuple(hosts), "start": start}
    )


def hosts_of(servers: list[Server]) -> list[Host]:
    """``(host, port)`` of each server (AMQP's 5672, or 5671 for ``amqps``, when none is given),
    from the split that masks its URL (``pigeon.transports.addresses``): the host pigeon names
    is the host it connects to."""
    return [(s.host, s.port or (5671 if s.scheme == "amqps" else 5672)) for s in servers]


HEARTBEAT = 10
"""Seconds of AMQP heartbeat asked for unless a server's URL gives its own (``?heartbeat=``):
RabbitMQ's guide advises 5 to 20 ("Detecting Dead TCP Connections with Heartbeats"). aiormq
takes a connection that brought no frame for (heartbeat + 1) x 3 s as dead (33 s) and aio-pika
reconnects, to another node of the URL if it names several; the server's default (60 s) left
an App on a node that stopped answering, and ready, for 3 minutes."""


def with_heartbeat(server: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` for aio-pika's ``connect_robust`` to ``server``, asking for ``HEARTBEAT``
    unless the URL gives its own (aio-pika's keyword arguments override the URL's query)."""
    if "heartbeat" in parse_qs(urlsplit(server).query):
        return options
    return {"heartbeat": HEARTBEAT, **options}
