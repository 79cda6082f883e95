"""nats-py closes its client for good after some server errors (a control line over the server's
limit is ``-ERR`` and a closed connection, never reconnected): the transport connects a new
client and every subscriber, server and worker of the App resumes."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest

from pigeon import App
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_for
from pigeon.transports.nats.core import CoreSubscription


async def _closed_for_good_and_replaced(app: App, uid: str) -> None:
    """Make nats-py close the App's client for good (a control line over the server's limit:
    ``-ERR``), and return once the App is connected again."""
    client = app.transport.client  # type: ignore[attr-defined]
    await client.publish(f"{uid}." + "x" * 5000, b"")  # past pigeon's checks: -ERR
    await wait_for(lambda: client.is_closed, what="nats-py to close its client")
    await wait_for(lambda: app.transport.connected, what="a new connection")


async def test_an_app_resumes_after_the_client_closed_for_good(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    app = App(nats_url)
    events: list[int] = []
    jobs: list[int] = []

    @app.subscribe(f"{uid}.events")
    async def on_event(n: int) -> None:
        events.append(n)

    @app.worker(f"{uid}.jobs")
    async def on_job(job: Job) -> None:
        jobs.append(job.n)

    @app.rpc(f"{uid}.double")
    async def double(n: int) -> int:
        return 2 * n

    async with app:
        await _closed_for_good_and_replaced(app, uid)
        await app.publish(f"{uid}.events", 1)
        await app.enqueue(f"{uid}.jobs", Job(2))
        assert await app.request(f"{uid}.double", 3) == 6
        await raw.publish(f"{uid}.events", b"4")
        await wait_for(lambda: events == [1, 4] and jobs == [2], what="events and jobs again")


async def test_a_service_answers_discovery_again_on_the_new_client(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    app = App(nats_url, service=f"svc{uid}")

    @app.rpc(f"{uid}.double")
    async def double(n: int) -> int:
        return 2 * n

    async with app:
        await _closed_for_good_and_replaced(app, uid)
        assert await app.request(f"{uid}.double", 2) == 4
        pong = await raw.request(f"$SRV.PING.svc{uid}", b"", timeout=5)
    assert f"svc{uid}".encode() in pong.data


_STARTED: contextvars.ContextVar[str | None] = contextvars.ContextVar("started", default=None)


@pytest.mark.parametrize("concurrency", [1, 2])
async def test_handlers_see_the_lifespans_context_on_the_new_client(
    nats_url: str, uid: str, concurrency: int
) -> None:
    """Subscriptions moved to a new client start their handlers from the App's context (what
    its lifespan set), not from the task that connected the new client."""
    app = App(nats_url)
    seen: list[str | None] = []

    @app.lifespan
    async def lifespan(app: App) -> AsyncIterator[None]:
        _STARTED.set("lifespan")
        yield

    @app.subscribe(f"{uid}.events", concurrency=concurrency)
    async def on_event(n: int) -> None:
        seen.append(_STARTED.get())

    @app.rpc(f"{uid}.started", concurrency=concurrency)
    async def started(n: int) -> str | None:
        return _STARTED.get()

    async with app:
        await _closed_for_good_and_replaced(app, uid)
        for n in range(4):
            await app.publish(f"{uid}.events", n)
            assert await app.request(f"{uid}.started", n) == "lifespan"
        await wait_for(lambda: len(seen) == 4, what="the 4 events handled")
    assert seen == ["lifespan"] * 4


async def test_the_app_is_not_connected_until_its_subscriptions_moved(
    nats_url: str, uid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What readiness reports (``transport.connected``) stays false while the new client is up
    but the App's rpc server is not subscribed on it yet: a caller trusting it would have heard
    ``NoResponders`` from the App's own server."""
    app = App(nats_url)
    moving = asyncio.Event()
    gate = asyncio.Event()
    move_to = CoreSubscription.move_to

    async def gated_move_to(self: CoreSubscription, client: Any) -> None:
        moving.set()
        await gate.wait()
        await move_to(self, client)

    monkeypatch.setattr(CoreSubscription, "move_to", gated_move_to)

    @app.rpc(f"{uid}.double")
    async def double(n: int) -> int:
        return 2 * n

    async with app:
        client = app.transport.client  # type: ignore[attr-defined]
        await client.publish(f"{uid}." + "x" * 5000, b"")  # past pigeon's checks: -ERR
        await asyncio.wait_for(moving.wait(), 10)
        assert app.transport.client.is_connected  # type: ignore[attr-defined]
        assert not app.transport.connected
        gate.set()
        await wait_for(lambda: app.transport.connected, what="the subscriptions moved")
        assert await app.request(f"{uid}.double", 3) == 6
