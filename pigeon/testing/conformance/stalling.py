"""A server that answers part of the way and then stops: ``start`` fails in time, never hangs.

A broker port can be held by something that speaks the protocol only so far: a proxy whose
upstream went quiet, a node out of file handles, a server of another version. Each peer here
answers the client's opening steps up to one point and then says nothing more (or hangs up);
the App must fail ``start`` with ``BrokerError`` within its timeout options, never report ready,
never let a client exception through, and close at once afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import SplitResult, urlsplit

import pytest

from pigeon import App, BrokerError
from pigeon.testing.conformance.fixtures import Backend
from pigeon.testing.conformance.hostile import AT_ONCE, Peer, scheme_of, serving, silent
from pigeon.testing.conformance.models import Job, Order
from pigeon.transports.nats.client import PigeonClient, new_client

PATIENCE = 1.0
"""Seconds each timeout option is set to here."""

OPTIONS: dict[str, dict[str, Any]] = {
    "nats": {"connect_timeout": PATIENCE},
    "amqp": {"connect_timeout": PATIENCE, "reconnect_patience": PATIENCE},
    "redis": {"socket_timeout": PATIENCE},
}

# -- NATS (https://docs.nats.io/reference/reference-protocols/nats-protocol) --------------------

NATS_INFO = (
    b'INFO {"server_id":"STALLING","version":"2.10.0","proto":1,"host":"127.0.0.1",'
    b'"port":4222,"headers":true,"max_payload":1048576,"jetstream":true}\r\n'
)


async def nats_tls_then_silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Asks for TLS in its INFO, then never takes part in the TLS handshake."""
    writer.write(NATS_INFO.replace(b'"proto":1', b'"proto":1,"tls_required":true'))
    await silent(reader, writer)


async def nats_ok_never_pong(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers CONNECT with ``+OK`` (as in verbose mode) and the PING with nothing."""
    writer.write(NATS_INFO)
    while line := await reader.readline():
        if line.startswith(b"CONNECT"):
            writer.write(b"+OK\r\n")


async def nats_gone_after_connect(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Hangs up once the client sent CONNECT."""
    writer.write(NATS_INFO)
    await reader.readline()
    writer.close()


# -- AMQP 0-9-1 (https://www.rabbitmq.com/resources/specs/amqp0-9-1.pdf) ----------------------

CAPABILITIES = {
    "publisher_confirms": True,
    "basic.nack": True,
    "consumer_cancel_notify": True,
    "exchange_exchange_bindings": True,
    "connection.blocked": True,
    "authentication_failure_close": True,
    "per_consumer_qos": True,
    "direct_reply_to": True,
}


def amqp_peer(answered: tuple[str, ...], *, capabilities: bool = True) -> Peer:
    """A peer that opens the connection, then answers only the methods named in ``answered``
    (``Channel.Open``, ``Confirm.Select``, ``Basic.Qos``, ...) and nothing else."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from pamqp import commands, frame  # an aio-pika dependency, there when it is

        properties: dict[str, Any] = {"product": "stalling"}
        if capabilities:
            properties["capabilities"] = CAPABILITIES
        start = commands.Connection.Start(server_properties=properties, mechanisms="PLAIN")
        await reader.readexactly(8)  # the protocol header
        writer.write(frame.marshal(start, 0))
        replies: dict[str, Any] = {
            "Connection.StartOk": commands.Connection.Tune(channel_max=2047, frame_max=131072),
            "Connection.Open": commands.Connection.OpenOk(),
            "Connection.Close": commands.Connection.CloseOk(),
            "Channel.Open": commands.Channel.OpenOk(),
            "Channel.Close": commands.Channel.CloseOk(),
            "Confirm.Select": commands.Confirm.SelectOk(),
            "Basic.Qos": commands.Basic.QosOk(),
        }
        always = ("Connection.StartOk", "Connection.Open", "Connection.Close", "Channel.Close")
        async for channel, method in _amqp_frames(reader, frame.unmarshal):
            name = getattr(method, "name", "")
            if name in replies and (name in always or name in answered):
                writer.write(frame.marshal(replies[name], channel))

    return serve


async def _amqp_frames(
    reader: asyncio.StreamReader, unmarshal: Callable[[bytes], tuple[int, int, Any]]
) -> AsyncIterator[tuple[int, Any]]:
    """``(channel, method)`` of each frame the client sends (type, channel, size, payload, end)."""
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
        while True:
            head = await reader.readexactly(7)
            size = struct.unpack(">I", head[3:7])[0]
            raw = head + await reader.readexactly(size + 1)
            _, channel, method = unmarshal(raw)
            yield channel, method


# -- Redis (RESP, https://redis.io/docs/latest/develop/reference/protocol-spec/) ---------------


async def redis_never_subscribes(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Answers PING and any other command, but never SUBSCRIBE."""
    while True:
        command = await _resp_command(reader)
        if command is None:
            return
        if command == "PING":
            writer.write(b"+PONG\r\n")
        elif command not in ("SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE"):
            writer.write(b"+OK\r\n")


async def _resp_command(reader: asyncio.StreamReader) -> str | None:
    """The name of the next command (an array of bulk strings), upper case; ``None`` at EOF."""
    header = await reader.readline()
    if not header.startswith(b"*"):
        return None
    words = []
    for _ in range(int(header[1:])):
        length = int((await reader.readline())[1:])
        words.append((await reader.readexactly(length + 2))[:-2])
    return words[0].decode().upper() if words else ""


async def http_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Another protocol on the port: an HTTP server that refuses what it read, and hangs up."""
    await reader.read(4096)
    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    writer.close()


PEERS: dict[str, dict[str, Peer]] = {
    "nats": {
        "TLS asked for, never begun": nats_tls_then_silent,
        "+OK to CONNECT, no PONG": nats_ok_never_pong,
        "gone after CONNECT": nats_gone_after_connect,
        "an HTTP server": http_server,
    },
    "amqp": {
        "no Channel.OpenOk": amqp_peer(()),
        "no Confirm.SelectOk": amqp_peer(("Channel.Open",)),
        "no answer to a declare": amqp_peer(("Channel.Open", "Confirm.Select", "Basic.Qos")),
        "no capabilities in Connection.Start": amqp_peer(
            ("Channel.Open", "Confirm.Select", "Basic.Qos"), capabilities=False
        ),
        "an HTTP server": http_server,
    },
    "redis": {"no answer to SUBSCRIBE": redis_never_subscribes, "an HTTP server": http_server},
}


def _app(scheme: str, port: int, backend: Backend) -> App:
    """An App with a subscriber and a worker (so that starting it declares and subscribes)."""
    credentials = "guest:guest@" if scheme == "amqp" else ""
    options: dict[str, Any] = {**backend.options, **OPTIONS[scheme]}
    app = App(f"{scheme}://{credentials}127.0.0.1:{port}", **options)

    @app.subscribe("stalling.orders")
    async def on_order(order: Order) -> None: ...

    @app.worker("stalling.jobs")
    async def on_job(job: Job) -> None: ...

    return app


async def test_a_server_that_stops_answering_part_way_fails_start_in_time(
    backend: Backend,
) -> None:
    """Each peer of the backend's protocol: ``start`` raises ``BrokerError`` within ``AT_ONCE``
    seconds (the timeout options at ``PATIENCE``), the App is not ready, and ``close`` is
    prompt."""
    scheme = scheme_of(backend)
    if scheme not in PEERS:
        pytest.skip(f"{scheme}:// has no server to stall")
    for name, peer in PEERS[scheme].items():
        async with serving(peer) as port:
            app = _app(scheme, port, backend)
            try:
                async with asyncio.timeout(AT_ONCE):
                    await app.start()
            except BrokerError:
                assert not app.ready, f"{name}: ready after a failed start"
            except TimeoutError:
                pytest.fail(f"{name}: start did not fail within {AT_ONCE}s")
            else:
                pytest.fail(f"{name}: start succeeded (ready: {app.ready})")
            finally:
                async with asyncio.timeout(AT_ONCE):
                    await app.close()


STALLS: dict[str, Peer] = {"nats": nats_ok_never_pong, "amqp": amqp_peer(())}
"""A peer that stalls once the connection is open, by scheme."""
HANGS_UP: dict[str, Peer] = {"nats": nats_gone_after_connect, "amqp": http_server}


def _lineups(scheme: str) -> dict[str, tuple[Peer, ...]]:
    """Servers to put ahead of the real one in a URL: each stalling peer of ``scheme`` alone,
    two that stall once the connection is open, and one that stalls then one that hangs up."""
    lineups: dict[str, tuple[Peer, ...]] = {name: (peer,) for name, peer in PEERS[scheme].items()}
    lineups["two that stall"] = (STALLS[scheme],) * 2
    lineups["one that stalls, one that hangs up"] = (STALLS[scheme], HANGS_UP[scheme])
    return lineups


GAPS_AHEAD: dict[str, set[str]] = {
    "amqp": {"no answer to a declare"},  # failover covers the connection, not the work after it
}
"""Lineups known to fail ``start`` still (with ``BrokerError``, in time), by scheme; see
"A server that stops answering part of the way" in docs/decisions.md."""


def _gaps(scheme: str) -> set[str]:
    """``GAPS_AHEAD`` of ``scheme``; on a nats-py that pigeon's own client was not checked
    against, nats-py's client waits for the close of a half-TLS socket for good."""
    gaps = set(GAPS_AHEAD.get(scheme, set()))
    if scheme == "nats" and not isinstance(new_client(), PigeonClient):
        gaps.add("TLS asked for, never begun")
    return gaps


async def test_servers_that_stall_ahead_in_the_url_give_way_to_the_real_one(
    backend: Backend,
) -> None:
    """A URL naming stalling servers and then the backend's real one (``dont_randomize``), for
    each lineup of ``_lineups``: ``start`` goes on to the real one within ``AT_ONCE`` seconds, and
    an event published then is delivered."""
    parts = urlsplit(backend.url())
    scheme = parts.scheme.split("+")[0]
    if scheme not in ("nats", "amqp"):
        pytest.skip(f"{scheme}:// takes one server per URL")
    failed: dict[str, str] = {}
    for name, lineup in _lineups(scheme).items():
        async with contextlib.AsyncExitStack() as stack:
            ports = [await stack.enter_async_context(serving(peer)) for peer in lineup]
            error = await _start_past(parts, ports, backend)
            if error is not None:
                failed[name] = error
    known = _gaps(scheme)
    unexpected = {name: error for name, error in failed.items() if name not in known}
    assert not unexpected, f"start did not get past: {unexpected}"
    closed = known - failed.keys()
    assert not closed, f"known gaps closed, remove them from GAPS_AHEAD: {closed}"


async def _start_past(parts: SplitResult, ports: list[int], backend: Backend) -> str | None:
    """Start an App whose URL names ``ports`` and then ``parts``' server, and have it deliver
    an event, within ``AT_ONCE`` seconds; what went wrong, or ``None``."""
    ahead = ",".join(f"127.0.0.1:{port}" for port in ports)
    if parts.scheme.startswith("amqp"):  # AMQP URLs list the hosts of one user and virtual host
        user = parts.netloc.split("@")[0]
        url = parts._replace(netloc=f"{user}@{ahead},{parts.hostname}:{parts.port}").geturl()
    else:
        url = f"nats://{ahead},{parts.geturl()}"
    scheme = parts.scheme.split("+")[0]
    app = App(url, **{**backend.options, **OPTIONS[scheme], "dont_randomize": True})
    delivered = asyncio.Event()

    @app.subscribe("stalling.ahead")
    async def on_order(order: Order) -> None:
        delivered.set()

    try:
        async with asyncio.timeout(AT_ONCE):
            await app.start()
            await app.publish("stalling.ahead", Order(id=1, item="ok"))
            await delivered.wait()
    except BrokerError as exc:
        return str(exc)
    except TimeoutError:
        return f"no start and delivery within {AT_ONCE}s"
    finally:
        async with asyncio.timeout(AT_ONCE):
            await app.close()
    return None
