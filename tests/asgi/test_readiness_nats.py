"""``/readyz`` follows the broker: 503 while the test's own nats-server is down, 200 once the App
reconnected to it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx

from pigeon import App
from pigeon.testing.waiting import wait_for
from tests.asgi.conftest import Client
from tests.brokers.nats import NatsServer


async def test_readiness_flips_when_the_broker_stops_and_starts(uid: str, client: Client) -> None:
    server = NatsServer(name="readyz")
    await asyncio.to_thread(server.start)
    try:
        app = App(server.url, reconnect_time_wait=0.1)

        @app.rpc(f"{uid}.ping")
        async def ping(n: int) -> int:
            return n

        async with client(app.asgi()) as http, app:
            assert (await http.get("/readyz")).status_code == 200

            await asyncio.to_thread(server.stop)
            await wait_for(status_is(http, 503), what="/readyz to answer 503")
            down = (await http.get("/readyz")).json()
            assert down["ready"] is False
            assert down["broker"]["connected"] is False
            assert not any(h["subscribed"] for h in down["handlers"]), "nothing is, at the broker"
            assert (await http.get("/healthz")).status_code == 200, "alive while the broker is down"

            await asyncio.to_thread(server.start)
            await wait_for(status_is(http, 200), what="/readyz to answer 200 again")
            assert await app.request(f"{uid}.ping", 7) == 7
            assert all(h["subscribed"] for h in (await http.get("/readyz")).json()["handlers"])
    finally:
        await asyncio.to_thread(server.remove)


def status_is(http: httpx.AsyncClient, code: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await http.get("/readyz")).status_code == code

    return check
