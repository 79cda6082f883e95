"""Request-reply semantics every transport must give."""

from __future__ import annotations

import asyncio

import pytest

from pigeon import Message, NoResponders, RemoteError, RequestTimeout
from pigeon import headers as h
from pigeon.testing.conformance.fixtures import MakeApp
from pigeon.testing.conformance.models import Reserve, Reserved
from pigeon.testing.waiting import wait_for


async def test_typed_reply(make_app: MakeApp, uid: str) -> None:
    server, client = make_app(), make_app()

    @server.rpc(f"{uid}.reserve")
    async def reserve(req: Reserve) -> Reserved:
        return Reserved(sku=req.sku, left=10 - req.quantity)

    async with server, client:
        reply = await client.request(f"{uid}.reserve", Reserve(sku="a", quantity=3), reply=Reserved)
    assert reply == Reserved(sku="a", left=7)


async def test_reply_without_a_type_is_plain_json(make_app: MakeApp, uid: str) -> None:
    app = make_app()

    @app.rpc(f"{uid}.echo")
    async def echo(body: dict[str, int]) -> dict[str, int]:
        return {k: v + 1 for k, v in body.items()}

    async with app:
        assert await app.request(f"{uid}.echo", {"a": 1}) == {"a": 2}


async def test_concurrent_requests_do_not_wait_for_each_other(make_app: MakeApp, uid: str) -> None:
    server, client = make_app(), make_app()
    arrived = 0
    all_arrived = asyncio.Event()
    count = 16

    @server.rpc(f"{uid}.slow")
    async def slow(n: int) -> int:
        nonlocal arrived
        arrived += 1
        if arrived == count:
            all_arrived.set()
        await all_arrived.wait()  # answers only once every request is in flight at once
        return n * 2

    async with server, client:
        replies = await asyncio.gather(
            *(client.request(f"{uid}.slow", n, reply=int, timeout=10) for n in range(count))
        )
    assert replies == [n * 2 for n in range(count)]


async def test_handler_error_reaches_the_caller(make_app: MakeApp, uid: str) -> None:
    server, client = make_app(), make_app()

    @server.rpc(f"{uid}.fail")
    async def fail(req: Reserve) -> Reserved:
        raise LookupError(f"out of stock: {req.sku}")

    async with server, client:
        with pytest.raises(RemoteError) as caught:
            await client.request(f"{uid}.fail", Reserve(sku="x", quantity=1))
    assert caught.value.type == "LookupError"
    assert caught.value.message == "out of stock: x"


async def test_invalid_request_is_a_remote_error(make_app: MakeApp, uid: str) -> None:
    server, client = make_app(), make_app()
    called = False

    @server.rpc(f"{uid}.reserve")
    async def reserve(req: Reserve) -> Reserved:
        nonlocal called
        called = True
        return Reserved(sku=req.sku, left=0)

    async with server, client:
        with pytest.raises(RemoteError) as caught:
            await client.request(f"{uid}.reserve", {"sku": "a", "quantity": "many"})
    assert caught.value.type == "DecodeError"
    assert "quantity" in caught.value.message
    assert not called


async def test_no_responders_is_raised_at_once(make_app: MakeApp, uid: str) -> None:
    app = make_app()
    async with app:
        with pytest.raises(NoResponders):
            await app.request(f"{uid}.nobody", {"a": 1}, timeout=30)


async def test_request_timeout(make_app: MakeApp, uid: str) -> None:
    server, client = make_app(), make_app()
    release = asyncio.Event()

    @server.rpc(f"{uid}.stuck")
    async def stuck(n: int) -> int:
        await release.wait()
        return n

    async with server, client:
        with pytest.raises(RequestTimeout):
            await client.request(f"{uid}.stuck", 1, timeout=0.3)
        release.set()


async def test_deadline_travels_and_expired_requests_are_dropped(
    make_app: MakeApp, uid: str
) -> None:
    server, client = make_app(), make_app()
    release = asyncio.Event()
    handled: list[int] = []
    deadlines: list[str] = []

    @server.rpc(f"{uid}.serial", concurrency=1)
    async def serial(n: int, msg: Message) -> int:
        deadlines.append(msg.headers[h.DEADLINE])
        handled.append(n)
        if n == 1:
            await release.wait()
        return n

    async with server, client:
        first = asyncio.create_task(client.request(f"{uid}.serial", 1, timeout=10))
        await wait_for(lambda: handled == [1])
        with pytest.raises(RequestTimeout):  # queued behind the first until its deadline passed
            await client.request(f"{uid}.serial", 2, timeout=0.2)
        release.set()
        assert await first == 1
        assert await client.request(f"{uid}.serial", 3, timeout=10) == 3
    assert handled == [1, 3], "the expired request was dropped, not handled"
    assert all(float(d) > 0 for d in deadlines)


async def test_replicas_share_requests(make_app: MakeApp, uid: str) -> None:
    replicas = [make_app(), make_app()]
    served: dict[int, int] = {0: 0, 1: 0}
    for index, app in enumerate(replicas):

        @app.rpc(f"{uid}.shared")
        async def shared(n: int, index: int = index) -> int:
            served[index] += 1
            await asyncio.sleep(0.005)  # a little work, so both replicas get a turn
            return n

    client = make_app()
    async with replicas[0], replicas[1], client:
        results = await asyncio.gather(*(client.request(f"{uid}.shared", n) for n in range(40)))
    assert sorted(results) == list(range(40))
    assert served[0] > 0
    assert served[1] > 0
