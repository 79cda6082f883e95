"""A broker that stops answering while an App runs (a frozen process, a network path that drops
everything): no socket error tells the client, so it must find out by itself, with the
transport's keepalive (NATS PINGs, AMQP heartbeats, a PING on Redis's Pub/Sub connection).
Readiness then says not ready within the keepalive's bound, and once the broker answers again
the App reconnects, is ready and serves. Before, every transport stayed ready on a silent
broker for minutes (NATS 6, RabbitMQ 3) or for good (Redis).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from pigeon import App, BrokerError
from pigeon.asgi import readiness
from pigeon.testing.conformance.fixtures import Backend
from pigeon.testing.conformance.hostile import scheme_of, serving_app, still_serves
from pigeon.testing.conformance.models import Job
from pigeon.testing.proxy import proxied
from pigeon.testing.waiting import wait_for

NOT_READY_WITHIN = 45.0
"""Seconds after the broker falls silent within which readiness must say so, with each
transport's default keepalive: NATS 30 s (a PING every 10 s, the third unanswered ends the
connection), RabbitMQ 33 s ((heartbeat + 1) x 3, heartbeat 10 s), Redis 10 s (2 x
``KEEPALIVE``)."""


async def test_an_app_on_a_broker_that_falls_silent_is_not_ready_then_serves_again(
    backend: Backend, uid: str
) -> None:
    scheme = scheme_of(backend)
    if scheme == "memory":
        pytest.skip("memory:// has no server to fall silent")
    async with proxied(backend.url()) as (url, proxy):
        options: dict[str, Any] = dict(backend.options)
        app, events, jobs = serving_app(lambda: App(url, **options), uid)
        try:
            async with app:
                assert readiness(app)["ready"]
                proxy.pause()
                await wait_for(
                    lambda: not readiness(app)["ready"], NOT_READY_WITHIN, "readiness to say no"
                )
                proxy.resume()
                await wait_for(lambda: readiness(app)["ready"], 60, "readiness to say yes again")
                await still_serves(app, uid, events, jobs, 1)
                assert events == [1]
                assert jobs == [1]
        finally:
            proxy.resume()
            app.shutdown_timeout = 0
            await app.close()


PATIENCE: dict[str, dict[str, Any]] = {
    "nats": {"reconnect_patience": 2},
    "amqp": {"reconnect_patience": 2},
    "redis": {"socket_timeout": 2},
}
"""Each transport's option bounding how long a send waits for the broker's answer, shortened."""


async def test_a_send_to_a_broker_that_fell_silent_fails_in_time(
    backend: Backend, uid: str
) -> None:
    """An ``enqueue`` waits for the broker to take the job (a confirm, a PubAck, a reply); a
    broker that takes the bytes and never answers (a frozen node, or a RabbitMQ quorum queue
    without a majority, which confirms nothing) made it wait for good on RabbitMQ. It raises
    ``BrokerError`` within its patience: the job may or may not be stored."""
    scheme = scheme_of(backend)
    if scheme == "memory":
        pytest.skip("memory:// has no server to fall silent")
    async with proxied(backend.url()) as (url, proxy):
        options: dict[str, Any] = {**backend.options, **PATIENCE[scheme]}
        app = App(url, **options)
        try:
            async with app:
                await app.enqueue(f"{uid}.jobs", Job(1))  # declared: the next one only sends
                proxy.pause()
                with pytest.raises(BrokerError):
                    async with asyncio.timeout(SEND_WITHIN):
                        await app.enqueue(f"{uid}.jobs", Job(2))
        finally:
            proxy.resume()
            app.shutdown_timeout = 0
            await app.close()


SEND_WITHIN = 20.0
"""Seconds within which a send to a silent broker must fail, with the patience above (2 s)."""


async def test_a_stalled_event_loop_loses_no_event(backend: Backend, uid: str) -> None:
    """A loop blocked for longer than a keepalive's interval (a CPU-bound step, a paused
    container) is no silent broker: what arrived meanwhile is read, nothing is cut. Redis's
    first keepalive measured silence from the last message and, after a 7 s stall, closed the
    Pub/Sub connection with 50 events in its buffer."""
    if scheme_of(backend) == "memory":
        pytest.skip("memory:// cannot be published to from another loop")
    options: dict[str, Any] = dict(backend.options)
    app, got = App(backend.url(), **options), []

    @app.subscribe(f"{uid}.stalled")
    async def on_event(n: int) -> None:
        got.append(n)

    def publish_elsewhere() -> None:
        async def publish() -> None:
            async with App(backend.url(), **options) as other:
                for n in range(EVENTS):
                    await other.publish(f"{uid}.stalled", n)

        asyncio.run(publish())

    async with app:
        await asyncio.sleep(3.5)  # into the keepalive's interval: the stall crosses its tick
        publisher = threading.Thread(target=publish_elsewhere)
        publisher.start()
        time.sleep(STALL)  # noqa: ASYNC251 -- the stall under test
        publisher.join()
        await wait_for(lambda: len(got) == EVENTS, 10, f"the {EVENTS} events sent meanwhile")
        assert readiness(app)["ready"]


EVENTS = 50
STALL = 7.0
"""Seconds the loop is blocked: past Redis's ``KEEPALIVE`` (5 s)."""
