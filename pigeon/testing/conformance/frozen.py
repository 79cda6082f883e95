"""A broker that stops answering while an App runs (a frozen process, a network path that drops
everything): no socket error tells the client, so it must find out by itself, with the
transport's keepalive (NATS PINGs, AMQP heartbeats, a PING on Redis's Pub/Sub connection).
Readiness then says not ready within the keepalive's bound, and once the broker answers again
the App reconnects, is ready and serves. Before, every transport stayed ready on a silent
broker for minutes (NATS 6, RabbitMQ 3) or for good (Redis).
"""

from __future__ import annotations

from typing import Any

import pytest

from pigeon import App
from pigeon.asgi import readiness
from pigeon.testing.conformance.fixtures import Backend
from pigeon.testing.conformance.hostile import scheme_of
from pigeon.testing.conformance.models import Job, Order
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
        app = App(url, **options)
        events, jobs = _serving(app, uid)
        try:
            async with app:
                assert readiness(app)["ready"]
                proxy.pause()
                await wait_for(
                    lambda: not readiness(app)["ready"], NOT_READY_WITHIN, "readiness to say no"
                )
                proxy.resume()
                await wait_for(lambda: readiness(app)["ready"], 60, "readiness to say yes again")
                await app.publish(f"{uid}.events", Order(id=1))
                await app.enqueue(f"{uid}.jobs", Job(1))
                await wait_for(lambda: events == [1] and jobs == [1], 30, "the App to serve again")
        finally:
            proxy.resume()
            app.shutdown_timeout = 0
            await app.close()


def _serving(app: App, uid: str) -> tuple[list[int], list[int]]:
    events: list[int] = []
    jobs: list[int] = []

    @app.subscribe(f"{uid}.events")
    async def on_order(order: Order) -> None:
        events.append(order.id)

    @app.worker(f"{uid}.jobs")
    async def on_job(job: Job) -> None:
        jobs.append(job.n)

    return events, jobs
