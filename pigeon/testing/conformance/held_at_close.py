"""Closing a subscription that holds events it has not handed to a handler yet.

Where those events are lost (nobody keeps them), the transport says so: one WARNING per
subscription with how many, and as many counted in ``transport.dropped_events`` (the metric
``pigeon_events_dropped_total``). Where the broker takes them back (a durable subscription, a
group whose queue outlives the member), nothing is logged. ``LOST_AT_CLOSE`` says which.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from pigeon.testing.conformance.fixtures import Backend, MakeApp, requires
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_for

EVENTS = 30
MAX_PENDING = 50

LOST_AT_CLOSE: dict[str, frozenset[str]] = {
    "memory": frozenset({"plain", "group"}),
    "nats": frozenset({"plain", "group"}),
    "redis": frozenset({"plain"}),
    "rabbitmq": frozenset({"plain"}),
}
"""Transport -> the kinds of subscription (``plain``, ``group``, ``durable``) whose events held
at close are lost, when the closing member is the group's only one. Elsewhere they stay with
the broker: Redis groups and every durable subscription take no more than their free slots
(JetStream, Redis) or hand their deliveries back (RabbitMQ, memory); a RabbitMQ group's queue
takes back what its member held (deleted with it if no member is left, by the broker)."""


def _options(kind: str, uid: str) -> dict[str, Any]:
    return {"plain": {}, "group": {"group": "g"}, "durable": {"durable": f"{uid}-d"}}[kind]


@pytest.mark.parametrize("concurrency", [1, 4])
@pytest.mark.parametrize("kind", ["plain", "group", "durable"])
async def test_events_lost_at_close_are_logged_and_counted(
    backend: Backend,
    make_app: MakeApp,
    uid: str,
    caplog: pytest.LogCaptureFixture,
    kind: str,
    concurrency: int,
) -> None:
    if kind == "durable":
        requires(backend, "durable")
    caplog.set_level(logging.WARNING, logger="pigeon")
    subscriber, publisher = make_app(shutdown_timeout=0.05), make_app()
    subject = f"{uid}.placed"
    seen: list[int] = []
    witnessed: list[int] = []  # a plain subscriber beside it: every event has arrived

    @subscriber.subscribe(
        subject, concurrency=concurrency, max_pending=MAX_PENDING, **_options(kind, uid)
    )
    async def held(event: Job) -> None:
        seen.append(event.n)
        await asyncio.Event().wait()  # cut off by close

    @subscriber.subscribe(subject)
    async def witness(event: Job) -> None:
        witnessed.append(event.n)

    async with publisher:
        await subscriber.start()
        for n in range(EVENTS):
            await publisher.publish(subject, Job(n))
        await wait_for(lambda: len(witnessed) == EVENTS, what="every event arrived")
        await wait_for(lambda: len(seen) == concurrency, what="the handlers busy")
        await subscriber.close()
    transport = backend.name.split("-")[0]
    lost = EVENTS - len(seen) if kind in LOST_AT_CLOSE[transport] else 0
    warned = [r.getMessage() for r in caplog.records]
    warned = [line for line in warned if "closing the subscription" in line]
    if not lost:
        assert warned == []
        return
    assert len(warned) == 1, warned
    assert f"dropped {lost} " in warned[0], warned[0]
    assert repr(subject) in warned[0], warned[0]
    assert dict(subscriber.transport.dropped_events) == {subject: lost}  # type: ignore[attr-defined]
