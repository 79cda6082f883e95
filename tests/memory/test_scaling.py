"""The memory transport's routing and queues stay bounded as the work grows (issues 12 and 18).

Memory-specific: the route cache and the queue capacity are the memory broker's own; the routing
they serve is checked on every transport by ``pigeon.testing.conformance.routing``.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import uuid

import pytest

from pigeon import App, ConfigurationError
from pigeon.subjects import matches
from pigeon.testing.conformance.models import Order
from pigeon.testing.waiting import wait_for
from pigeon.transports.memory.sublist import CACHE_CAPACITY, Sublist
from pigeon.transports.memory.topology import MemoryBroker, MemoryQueue, discard_broker


def _app(**options: object) -> App:
    return App(f"memory://scaling-{uuid.uuid4().hex}", **options)


def _broker(app: App) -> MemoryBroker:
    broker = getattr(app.transport, "broker", None)
    assert isinstance(broker, MemoryBroker)
    return broker


@pytest.fixture(autouse=True)
def _forget_brokers() -> object:
    yield
    # every broker a test made is named scaling-<hex>; dropping them keeps the process small
    from pigeon.transports.memory import topology

    for name in [n for n in topology._BROKERS if n.startswith("scaling-")]:
        discard_broker(name)


def test_the_trie_matches_as_the_subject_rules_say_through_churn() -> None:
    rng = random.Random(18)
    tokens = ["a", "b", "c"]
    patterns = [
        ".".join(p)
        for n in (1, 2, 3)
        for p in itertools.product([*tokens, "*"], repeat=n)
        if "*" in p or rng.random() < 0.5
    ]
    patterns += [f"{p}.>" for p in ("a", "b.*", "*.*")] + [">"]
    subjects = [".".join(s) for n in (1, 2, 3, 4) for s in itertools.product(tokens, repeat=n)]
    sublist: Sublist[str] = Sublist(capacity=16)
    bound: set[str] = set()
    for _ in range(400):
        pattern = rng.choice(patterns)
        if pattern in bound:
            sublist.remove(pattern, pattern)
            bound.discard(pattern)
        else:
            sublist.insert(pattern, pattern)
            bound.add(pattern)
        subject = rng.choice(subjects)
        assert sorted(sublist.match(subject)) == sorted(p for p in bound if matches(p, subject))
        assert sublist.cached <= 16


async def test_unique_subjects_keep_the_route_cache_bounded() -> None:
    app = _app()
    received = 0

    @app.subscribe("orders.*.created")
    async def on_order(order: Order) -> None:
        nonlocal received
        received += 1

    async with app:
        for n in range(100_000):
            await app.publish(f"orders.{n}.created", Order(id=n))
        await wait_for(lambda: received == 100_000, what="every event")
        assert _broker(app).events.cached <= CACHE_CAPACITY


async def test_many_rpc_handlers_each_answer_their_own_subject() -> None:
    app = _app()
    for index in range(300):

        @app.rpc(f"svc.{index}")
        async def answer(order: Order, number: int = index) -> int:
            return order.id * 1000 + number

    async with app:
        for n in (0, 299, 150):
            assert await app.request(f"svc.{n}", Order(id=7), reply=int) == 7000 + n
        assert _broker(app).rpc.cached <= CACHE_CAPACITY


async def test_a_fast_producer_waits_for_room_and_loses_nothing() -> None:
    app = _app(queue_capacity=8)
    gate = asyncio.Event()
    got: list[int] = []

    @app.subscribe("ticks")
    async def on_tick(order: Order) -> None:
        await gate.wait()
        got.append(order.id)

    async with app:

        async def produce() -> None:
            for n in range(100):
                await app.publish("ticks", Order(id=n))

        producer = asyncio.create_task(produce())
        queue = _queue(app, "ticks")
        await wait_for(lambda: bool(queue.producers), what="the producer to wait for room")
        assert not producer.done()
        assert len(queue.ready) == 8
        gate.set()
        await producer
        await wait_for(lambda: len(got) == 100, what="every event")
    assert got == list(range(100))


async def test_a_busy_publisher_lets_its_subscriber_run() -> None:
    # under the queue's capacity publish never has to wait; it still yields now and then, so
    # events are handled during a long burst instead of piling up until it ends
    app = _app()
    got: list[int] = []

    @app.subscribe("ticks")
    async def on_tick(order: Order) -> None:
        got.append(order.id)

    async with app:
        for n in range(1_000):
            await app.publish("ticks", Order(id=n))
        handled_during_burst = len(got)
        await wait_for(lambda: len(got) == 1_000, what="every event")
    assert handled_during_burst > 0
    assert got == list(range(1_000))


async def test_enqueue_waits_for_room_and_every_job_runs_once() -> None:
    app = _app(queue_capacity=4)
    gate = asyncio.Event()
    done: list[int] = []

    @app.worker("jobs", concurrency=2)
    async def work(order: Order) -> None:
        await gate.wait()
        done.append(order.id)

    async with app:
        producer = asyncio.create_task(_enqueue_all(app, "jobs", 60))
        queue = _broker(app).existing_work_queue("jobs")
        assert queue is not None
        await wait_for(lambda: bool(queue.producers), what="enqueue to wait for room")
        gate.set()
        await producer
        await wait_for(lambda: len(done) == 60, what="every job")
    assert sorted(done) == list(range(60))


async def test_a_queue_nobody_consumes_stores_without_blocking() -> None:
    app = _app(queue_capacity=4)
    async with app:
        await asyncio.wait_for(_enqueue_all(app, "unserved", 50), 5)
        queue = _broker(app).existing_work_queue("unserved")
        assert queue is not None
        assert len(queue.ready) == 50


async def test_a_handler_publishing_to_its_own_full_queue_does_not_deadlock() -> None:
    app = _app(queue_capacity=4)
    seen: list[int] = []

    @app.subscribe("tree")
    async def grow(order: Order) -> None:
        seen.append(order.id)
        if order.id < 40:  # each of the first 40 events publishes three more onto this queue
            for child in range(3):
                await app.publish("tree", Order(id=order.id * 3 + child + 1))

    async with app:
        await app.publish("tree", Order(id=0))
        await wait_for(lambda: len(seen) == 121, what="the whole tree of events")
    assert sorted(seen) == list(range(121))


async def test_handlers_publishing_to_each_other_do_not_deadlock() -> None:
    app = _app(queue_capacity=2)
    seen: list[int] = []

    for mine, other in (("ping", "pong"), ("pong", "ping")):

        @app.subscribe(mine, concurrency=2)
        async def bounce(order: Order, other: str = other) -> None:
            seen.append(order.id)
            if order.id < 300:
                await app.publish(other, Order(id=order.id + 1))

    async with app:
        for n in range(8):  # eight rallies at once, over queues of two
            await app.publish("ping", Order(id=n))
        await wait_for(lambda: len(seen) == sum(301 - n for n in range(8)), what="every rally")
    assert sorted(set(seen)) == list(range(301))


def test_queue_capacity_must_be_a_positive_int() -> None:
    with pytest.raises(ConfigurationError, match="queue_capacity"):
        _app(queue_capacity=0)


def _queue(app: App, subject: str) -> MemoryQueue:
    (queue,) = _broker(app).route(subject)
    return queue


def _busy(app: App) -> bool:
    return any(q.ready or q.in_flight or q.handing for q in _broker(app).queues.values())


async def _enqueue_all(app: App, queue: str, count: int) -> None:
    for n in range(count):
        await app.enqueue(queue, Order(id=n))
