"""A RabbitMQ node that comes back empty (restarted without its data: a container without its
volume, a replaced machine) under live Apps: every reader is declared again and serves again,
and nothing pigeon declares once per connection is taken as still there.

Before, aio-pika restored the queues' bindings to exchanges pigeon had declared on channels of
its own, which the empty node lacked: every reconnect failed with "no exchange", for good; and a
job's ``Redeliver`` and dead letter failed ("no exchange 'pigeon.delay.deliver'"), so the job
looped to its delivery limit and was lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator

import pytest

from pigeon import App, BrokerError, NoResponders, Redeliver, RequestTimeout
from pigeon.asgi import readiness
from pigeon.testing.conformance.models import Job, Order
from pigeon.testing.waiting import wait_for
from tests.brokers.rabbitmq_cluster import RabbitCluster, started_cluster

BACK_WITHIN = 60.0
"""Seconds the Apps may take to serve again once the node is back (reconnects every 0.5 s)."""

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture
def one_node() -> Iterator[RabbitCluster]:
    node = started_cluster(size=1)
    yield node
    node.remove()


async def _sends(call: Awaitable[object]) -> bool:
    """Whether a send went through (``False`` while the App reconnects)."""
    try:
        await call
    except (BrokerError, NoResponders, RequestTimeout):
        return False
    return True


async def _ready_too_soon(app: App, early: list[int]) -> None:
    """Every millisecond, note how many subscriptions' channels are not restored yet while the
    App says it is ready (aio-pika reconnects, then restores its channels one by one)."""
    subscriptions = app.transport._subscriptions  # type: ignore[attr-defined]
    while True:
        closed = sum(1 for s in subscriptions if s._channel.is_closed)
        if closed and readiness(app)["ready"]:
            early.append(closed)
        await asyncio.sleep(0.001)


async def test_every_reader_serves_again_after_its_node_came_back_empty(
    one_node: RabbitCluster,
) -> None:
    url = one_node.nodes[0].url
    app = App(url, reconnect_interval=0.5, reconnect_patience=5.0)
    plain: list[int] = []
    group: list[int] = []
    durable: list[int] = []
    calls: list[int] = []

    @app.subscribe("wipe.events")
    async def on_plain(order: Order) -> None:
        plain.append(order.id)

    @app.subscribe("wipe.events", group="billing")
    async def on_group(order: Order) -> None:
        group.append(order.id)

    @app.subscribe("wipe.events", durable="audit")
    async def on_durable(order: Order) -> None:
        durable.append(order.id)

    @app.rpc("wipe.*")  # a wildcard server binds to the rank exchanges
    async def quote(order: Order) -> Order:
        return order

    @app.worker("wipe.jobs", redeliver=Redeliver((0.2,)))
    async def work(job: Job) -> None:
        calls.append(job.n)
        if calls.count(job.n) == 1:
            raise RuntimeError("fails once, then is redelivered down the delay ladder")

    async def everything_serves(n: int) -> None:
        async def received() -> bool:  # each try sends again: before its queue is restored on
            # the empty node, an event has nowhere to go (as on any new broker)
            await _sends(app.publish("wipe.events", Order(id=n)))
            return n in plain and n in group and n in durable

        await wait_for(received, BACK_WITHIN, "a publish to reach every subscriber")
        asking = lambda: app.request("wipe.quote", Order(id=n), reply=Order, timeout=2)  # noqa: E731
        await wait_for(lambda: _sends(asking()), BACK_WITHIN, "an answer")
        await app.enqueue("wipe.jobs", Job(n))
        await wait_for(lambda: calls.count(n) == 2, 10, "the job, redelivered once")

    async with app:
        await everything_serves(1)
        watching = asyncio.create_task(_ready_too_soon(app, early := []))
        await asyncio.to_thread(one_node.wipe, one_node.nodes[0])
        await wait_for(lambda: readiness(app)["ready"], BACK_WITHIN, "the App to be ready again")
        watching.cancel()
        assert not early, f"ready while {early[0]} consumer channels were still being restored"
        await app.publish("wipe.events", Order(id=2))  # ready: every queue is back, bound
        await wait_for(lambda: 2 in plain and 2 in group and 2 in durable, 10, "the event")
        await everything_serves(3)
