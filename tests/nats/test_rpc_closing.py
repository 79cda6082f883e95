"""A closing rpc server on NATS hands on the requests it holds unstarted, beyond what the
conformance suite checks: with ``concurrency`` above 1 (one request held by the subscription's
callback, the others in nats-py's queue), for callers that are not pigeon (on the plain subject),
and without counting them as dropped. On nats-py's own ``Client`` they are dropped, as before."""

from __future__ import annotations

import asyncio
import json

import nats
import pytest
from nats import errors as nats_errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from pigeon import App, NoResponders, RemoteError, RequestTimeout
from pigeon.testing.conformance.rpc_closing import SOON, TIMEOUT, Blocking, serve_blocking
from pigeon.testing.waiting import wait_for
from pigeon.transports.nats import transport as nats_transport
from pigeon.transports.nats.client import registered


def _received(app: App) -> int:
    """Messages the App's connection has read (the requests it holds included)."""
    return int(app.transport.client.stats["in_msgs"])  # type: ignore[attr-defined]


async def test_requests_held_beyond_concurrency_fail_at_once_and_are_not_dropped(
    nats_url: str, uid: str
) -> None:
    server, client = App(nats_url, shutdown_timeout=0.2), App(nats_url)
    handler = Blocking()
    serve_blocking(server, f"{uid}.ask", handler, concurrency=2)
    async with client:
        await server.start()
        before = _received(server)
        calls = [
            asyncio.create_task(client.request(f"{uid}.ask", n, timeout=TIMEOUT)) for n in range(6)
        ]
        await wait_for(lambda: _received(server) >= before + 6, SOON, "the server to hold all six")
        await wait_for(lambda: len(handler.started) == 2, SOON, "two handlers to start")
        await server.close()
        async with asyncio.timeout(SOON):
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert handler.started == [0, 1]
    assert all(isinstance(each, RemoteError) for each in outcomes[:2]), outcomes
    assert [type(each) for each in outcomes[2:]] == [NoResponders] * 4
    drops = server.transport.slow_consumers.dropped  # type: ignore[attr-defined]
    assert sum(drops.values()) == 0, drops


async def _held_raw_request(
    raw: nats.NATS, server: App, subject: str, handler: Blocking
) -> asyncio.Task[object]:
    """Send two requests as a plain NATS client; return the second's task once the server holds
    it behind the first's handler."""
    before = _received(server)
    first = asyncio.create_task(raw.request(subject, b"1", timeout=TIMEOUT))
    await wait_for(lambda: handler.started == [1], SOON, "the first request's handler to start")
    second = asyncio.create_task(raw.request(subject, b"2", timeout=TIMEOUT))
    await wait_for(lambda: _received(server) >= before + 2, SOON, "the server to hold the second")
    first.add_done_callback(lambda task: task.exception())  # heard ServerStopped: not checked
    return second


async def test_a_plain_clients_held_request_hears_no_responders_at_once(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    server = App(nats_url, shutdown_timeout=0.2)
    handler = Blocking()
    serve_blocking(server, f"{uid}.ask", handler, concurrency=1)
    await server.start()
    second = await _held_raw_request(raw, server, f"{uid}.ask", handler)
    await server.close()
    with pytest.raises(nats_errors.NoRespondersError):
        async with asyncio.timeout(SOON):
            await second
    assert handler.started == [1]


async def test_a_plain_clients_held_request_goes_to_another_server(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    closing, other = App(nats_url, shutdown_timeout=0.2), App(nats_url)
    blocked, answering = Blocking(), Blocking()
    answering.release.set()
    serve_blocking(closing, f"{uid}.ask", blocked, concurrency=1)
    serve_blocking(other, f"{uid}.ask", answering, concurrency=1)
    seen: list[bytes] = []  # a plain subscriber of the subject sees each request once

    async def watch(msg: Msg) -> None:
        seen.append(msg.data)

    await raw.subscribe(f"{uid}.ask", cb=watch)
    await closing.start()
    second = await _held_raw_request(raw, closing, f"{uid}.ask", blocked)
    async with other:
        await closing.close()
        async with asyncio.timeout(SOON):
            reply = await second
        await registered(raw)  # anything sent on the subject has come
    assert json.loads(reply.data) == 2  # type: ignore[attr-defined]
    assert (blocked.started, answering.started) == ([1], [2])
    assert sorted(seen) == [b"1", b"2"]


async def test_on_nats_pys_own_client_held_requests_are_dropped_and_counted(
    nats_url: str, uid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = App(nats_url)
    handler = Blocking()
    async with client:
        monkeypatch.setattr(nats_transport, "new_client", Client)
        server = App(nats_url, shutdown_timeout=0.2)
        serve_blocking(server, f"{uid}.ask", handler, concurrency=1)
        await server.start()
        assert type(server.transport.client) is Client  # type: ignore[attr-defined]
        before = _received(server)
        calls = [asyncio.create_task(client.request(f"{uid}.ask", n, timeout=1)) for n in range(3)]
        await wait_for(lambda: _received(server) >= before + 3, SOON, "the server to hold all")
        await server.close()
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert [type(each) for each in outcomes] == [RemoteError, RequestTimeout, RequestTimeout]
    drops = server.transport.slow_consumers.dropped  # type: ignore[attr-defined]
    assert drops[f"{uid}.ask"] == 2, drops
