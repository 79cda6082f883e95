"""Whatever an RPC server registers, it registers again after its Pub/Sub connection comes back,
and a request never deletes another server's registration."""

from __future__ import annotations

import contextlib

from redis.asyncio import Redis

from pigeon import App, PigeonError
from pigeon.testing.conformance.models import Order
from pigeon.testing.waiting import wait_for
from pigeon.transports.redis.requests import STREAM_TTL_MS
from pigeon.transports.redis.topology import Keys
from tests.brokers.redis import RedisServer


async def test_a_wildcard_server_answers_again_after_its_pubsub_connection_drops(
    own_server: RedisServer,
) -> None:
    server = App(own_server.url)

    @server.rpc("wild.*")
    async def wild(order: Order) -> Order:
        return order

    @server.rpc("exact.one")
    async def exact(order: Order) -> Order:
        return order

    admin = Redis.from_url(own_server.url)
    async with server, App(own_server.url) as caller:
        assert await caller.request("wild.x", Order(id=1), reply=Order, timeout=2) == Order(id=1)
        await admin.client_kill_filter(_type="pubsub")
        for n in range(20):  # requests during the blip, while nobody is subscribed
            with contextlib.suppress(PigeonError):
                await caller.request("wild.x", Order(id=n), timeout=0.2)

        async def answered(subject: str) -> bool:
            try:
                await caller.request(subject, Order(id=2), timeout=1)
            except PigeonError:
                return False
            return True

        await wait_for(lambda: answered("exact.one"), timeout=15, what="the exact server back")
        await wait_for(lambda: answered("wild.x"), timeout=15, what="the wildcard server back")
    await admin.aclose()


async def test_the_last_server_to_leave_takes_its_request_stream_and_registration(
    redis_url: str, prefix: str, raw: Redis, uid: str
) -> None:
    keys = Keys(prefix)
    first, second = App(redis_url), App(redis_url)
    for app in (first, second):

        @app.rpc(f"{uid}.*")
        async def echo(order: Order) -> Order:
            return order

    async with first, App(redis_url) as caller:
        async with second:
            for n in range(20):
                await caller.request(f"{uid}.x", Order(id=n), timeout=2)
        stream = keys.request_stream(f"{uid}.*")
        assert await raw.exists(stream)  # one server is left
        assert 0 < await raw.pttl(stream) <= STREAM_TTL_MS  # what a crash leaves expires
        assert await raw.hexists(keys.wildcard_servers, f"{uid}.*")
        assert await caller.request(f"{uid}.x", Order(id=1), reply=Order) == Order(id=1)
    assert not await raw.exists(stream)
    assert not await raw.hexists(keys.wildcard_servers, f"{uid}.*")
