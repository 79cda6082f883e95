"""Failover at start across the servers of one NATS URL: a server that ends nats-py's handshake
and then stops answering gives way to the next one.

nats-py's ``connect`` tries the servers of its pool in turn until one ends the handshake, each
within ``connect_timeout`` (the TCP connect, the INFO, the answer to CONNECT); but it takes any
line after CONNECT for that answer (a ``+OK``, even the socket's end), and then stops trying.
pigeon therefore asks for one round trip more (PING/PONG, ``Client.flush``). When it goes
unanswered and the URL names other servers, ``answering`` has nats-py move on to the next server
of its pool, in order, the way nats-py does itself when its own PINGs go unanswered: it reports
a stale connection (``_process_op_err(StaleConnectionError())``, nats-py 2.x; it reconnects
from a connection still in its handshake too, where the public ``force_reconnect`` does
nothing, and nats-py leaves a connection there when CONNECT was answered with a ``+OK`` and no
``PONG``), and pigeon's own PING, ``connect_timeout`` again, tells whether the next one
answers. The silent servers stay in nats-py's pool for later reconnects: failing back to them
is nats-py's to decide, as for any server.

A server whose INFO asks for TLS and which then never begins it fails nats-py's handshake in
time, but nats-py closes the failed connection before it tries the next server, and the close
of a socket handed to TLS never ends: ``BoundedCloseTransport`` gives it ``CLOSE_PATIENCE``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from nats import errors
from nats.aio.client import Client
from nats.aio.transport import TcpTransport

log = logging.getLogger("pigeon")

CLOSE_PATIENCE = 1.0
"""Seconds a socket being closed may take before it is cut."""


class NoAnswer(TimeoutError):
    """No server of the pool answered a PING after its handshake; says how long one waited."""

    ADVICE = (
        "a server took the connection and then answered nothing: is it overloaded or out of "
        "file handles, or a proxy whose upstream is down? Name a live server in the URL"
    )


async def answering(client: Client, patience: float, servers: int) -> None:
    """Return once a server of ``client``'s pool of ``servers`` servers has answered a PING
    within ``patience`` seconds, starting with the one it is on and moving on in order while one
    does not (each server's handshake and PING get ``patience`` seconds each). A server that
    hangs up meanwhile is nats-py's to leave (it reconnects by itself); the one it moves to is
    asked in turn, and not counted as silent.

    Raises ``NoAnswer`` when every server was asked and none answered, ``TimeoutError`` when
    the time for all of them ran out first, or a nats-py error when the client closed (it had
    no server left to reconnect to)."""
    options: dict[str, Any] = client.options
    if not options.get("allow_reconnect", True):
        servers = 1  # nats-py tries no other server either
    randomize = options.get("dont_randomize", False)
    options["dont_randomize"] = True  # a reconnect's shuffle could bring a silent server first
    silent = 0
    try:
        async with asyncio.timeout(2 * patience * servers):
            while True:
                await _settled(client, patience)
                reconnects = client.stats["reconnects"]
                if await _answers(client, patience):
                    return
                if client.is_reconnecting or client.stats["reconnects"] != reconnects:
                    continue  # the server hung up and nats-py moved on, dropping our PING
                silent += 1
                if silent == servers:
                    break
                log.warning(
                    "pigeon: NATS %s did not answer a PING within %gs (connect_timeout) after "
                    "its handshake; trying the next server",
                    _address(client),
                    patience,
                )
                if not await _report_stale(client):
                    break
    finally:
        options["dont_randomize"] = randomize
    raise NoAnswer(f"no answer to a PING within {patience:g}s after the handshake")


async def _answers(client: Client, patience: float) -> bool:
    try:
        async with asyncio.timeout(patience):
            await client.flush()
    except TimeoutError:
        return False
    return True


async def _settled(client: Client, patience: float) -> None:
    """Return once nats-py is not reconnecting (it ended a server's handshake, or closed).

    nats-py marks the end of a reconnect's handshake only in its status, and starts a new
    reconnect task when a server it reached hangs up: look again every tenth of ``patience``."""
    while not client.is_connected:
        reconnecting: asyncio.Task[None] | None = getattr(client, "_reconnection_task", None)
        if reconnecting is None or reconnecting.done():
            return
        await asyncio.wait({reconnecting}, timeout=patience / 10)


async def _report_stale(client: Client) -> bool:
    """Have ``client`` leave its server for the next of its pool; False, at once, on a nats-py
    without ``_process_op_err`` or a client that is not on a server.

    nats-py's reconnect ends with a flush of its own, waiting 10 s; the caller's flush decides
    sooner, and a second stale report cancels nats-py's (its reconnect task stops its tasks and
    closes the socket first: its own loop, on a failed flush, would not)."""
    stale = getattr(client, "_process_op_err", None)
    if stale is None or not (client.is_connected or client.is_connecting):
        return False
    await stale(errors.StaleConnectionError())
    return True


def _address(client: Client) -> str:
    """``host:port`` of the server ``client`` is on, also while in its handshake (when nats-py's
    ``connected_url`` is None)."""
    server = getattr(client, "_current_server", None)
    uri = server.uri if server is not None else client.connected_url
    return f"{uri.hostname}:{uri.port}" if uri is not None else "server"


class BoundedCloseTransport(TcpTransport):
    """nats-py's TCP transport, whose ``wait_closed`` waits ``CLOSE_PATIENCE`` seconds at most,
    then cuts the socket.

    A socket handed to TLS whose handshake the server never began (its INFO asked for TLS, then
    silence) never reports itself closed: nats-py's connect loop, which closes a failed
    connection before it tries the next server, waited on it for good, and a server like that
    ahead of others in a URL failed ``start``. ``PigeonClient`` makes nats-py's transport one of
    these once connected (it adds no state)."""

    async def wait_closed(self) -> None:
        try:
            async with asyncio.timeout(CLOSE_PATIENCE):
                await super().wait_closed()  # type: ignore[no-untyped-call]
        except TimeoutError:
            abort(self)


def abort(transport: object) -> None:
    """Cut the socket of a nats-py transport at once (nats-py 2.x keeps its asyncio writers,
    the TLS one and the bare one under it, at ``_io_writer`` and ``_bare_io_writer``; on a
    transport without them, nothing is done)."""
    for name in ("_io_writer", "_bare_io_writer"):
        writer = getattr(transport, name, None)
        if writer is not None:
            writer.transport.abort()
