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

from pigeon.testing.conformance.fixtures import Backend, MakeApp, known_gap, requires
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


HANDED_BACK = 8
BUSY = 4


@pytest.mark.parametrize("kind", ["durable", "worker"])
async def test_deliveries_handed_back_at_close_come_again_in_publish_order(
    request: pytest.FixtureRequest, backend: Backend, make_app: MakeApp, uid: str, kind: str
) -> None:
    """A durable subscription or a worker closing with deliveries in its handlers hands them
    back; the next one to take them, one at a time, gets them in the order they were sent, as a
    RabbitMQ requeue or a JetStream redelivery gives them."""
    if kind == "durable":
        requires(backend, "durable")
    else:  # a classic queue's returned job is sent again to count its return: it goes last
        gap = "a returned job goes to the back of a classic queue"
        known_gap(request, backend, {"rabbitmq-classic": gap})
    soon = {"claim_idle": 1.0} if backend.name.startswith("redis") else {}  # claimed soon
    closing, taking, publisher = (
        make_app(shutdown_timeout=0.01, **soon),
        make_app(**soon),
        make_app(),
    )
    address = f"{uid}.placed"
    started: list[int] = []
    got: list[int] = []

    async def stuck(event: Job) -> None:
        started.append(event.n)
        await asyncio.Event().wait()  # cut off by close: handed back

    async def in_turn(event: Job) -> None:
        got.append(event.n)

    if kind == "durable":
        closing.subscribe(address, durable=f"{uid}-d", concurrency=BUSY)(stuck)
        taking.subscribe(address, durable=f"{uid}-d")(in_turn)
    else:
        closing.worker(address, concurrency=BUSY)(stuck)
        taking.worker(address)(in_turn)
    async with publisher:
        await closing.start()
        for n in range(HANDED_BACK):
            if kind == "durable":
                await publisher.publish(address, Job(n))
            else:
                await publisher.enqueue(address, Job(n))
        await wait_for(lambda: len(started) == BUSY, what="the handlers busy")
        await closing.close()
        async with taking:
            await wait_for(lambda: len(got) == HANDED_BACK, what="every delivery taken again")
    assert got == list(range(HANDED_BACK)), got
