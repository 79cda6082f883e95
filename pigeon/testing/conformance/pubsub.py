"""Publish-subscribe semantics every transport must give."""

from __future__ import annotations

import asyncio
import contextvars
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from pigeon import App, BrokerError, Message
from pigeon.testing.conformance.fixtures import Backend, MakeApp, cancel_own_task, requires
from pigeon.testing.conformance.models import Order
from pigeon.testing.waiting import wait_for


async def test_every_subscriber_gets_every_event(make_app: MakeApp, uid: str) -> None:
    first, second = make_app(), make_app()
    seen: dict[str, list[int]] = {"first": [], "second": []}

    @first.subscribe(f"{uid}.created")
    async def on_first(order: Order) -> None:
        seen["first"].append(order.id)

    @second.subscribe(f"{uid}.created")
    async def on_second(order: Order) -> None:
        seen["second"].append(order.id)

    async with first, second:
        for n in range(20):
            await first.publish(f"{uid}.created", Order(id=n))
        await wait_for(lambda: len(seen["first"]) == 20 and len(seen["second"]) == 20)
    assert seen["first"] == list(range(20))
    assert seen["second"] == list(range(20))


async def test_a_group_shares_events_among_its_members(make_app: MakeApp, uid: str) -> None:
    members = [make_app(), make_app()]
    handled: Counter[str] = Counter()
    ids: list[int] = []

    for index, app in enumerate(members):

        @app.subscribe(f"{uid}.billing", group="billing")
        async def bill(order: Order, index: int = index) -> None:
            await asyncio.sleep(0.001)  # a little work, so both members get a turn
            handled[f"member{index}"] += 1
            ids.append(order.id)

    publisher = make_app()
    async with members[0], members[1], publisher:
        for n in range(40):
            await publisher.publish(f"{uid}.billing", Order(id=n))
        await wait_for(lambda: len(ids) == 40)
    assert sorted(ids) == list(range(40)), "each event handled exactly once by the group"
    assert handled["member0"] > 0
    assert handled["member1"] > 0


@pytest.mark.parametrize(
    ("pattern", "matching", "other"),
    [
        ("{uid}.*.created", ["{uid}.eu.created", "{uid}.us.created"], ["{uid}.eu.west.created"]),
        ("{uid}.>", ["{uid}.a", "{uid}.a.b.c"], ["x{uid}.a"]),
    ],
)
async def test_wildcards(
    make_app: MakeApp, uid: str, pattern: str, matching: list[str], other: list[str]
) -> None:
    app = make_app()
    subjects: list[str] = []

    @app.subscribe(pattern.format(uid=uid))
    async def on_event(order: Order, msg: Message) -> None:
        subjects.append(msg.subject)

    async with app:
        for subject in other + matching:
            await app.publish(subject.format(uid=uid), Order(id=1))
        expected = [s.format(uid=uid) for s in matching]
        await wait_for(lambda: len(subjects) >= len(expected))
    # the non-matching subjects were published first: had one matched, it would lead the list
    assert subjects == expected


async def test_durable_subscription_keeps_events_while_stopped(
    make_app: MakeApp, uid: str, backend: Backend
) -> None:
    requires(backend, "durable")
    received: list[int] = []

    def subscriber() -> App:
        app = make_app()

        @app.subscribe(f"{uid}.audit", durable=f"{uid}-audit")
        async def audit(order: Order) -> None:
            received.append(order.id)

        return app

    publisher = make_app()
    async with publisher:
        first = subscriber()
        async with first:
            await publisher.publish(f"{uid}.audit", Order(id=1))
            await wait_for(lambda: received == [1])
        await publisher.publish(f"{uid}.audit", Order(id=2))
        await publisher.publish(f"{uid}.audit", Order(id=3))
        async with subscriber():
            await wait_for(lambda: received == [1, 2, 3], what="events kept while stopped")


async def test_a_closed_app_refuses_to_publish_on_a_subject_it_published_on(
    make_app: MakeApp, uid: str
) -> None:
    """What a transport remembers of a subject it published on, to skip its checks the next
    time, never outlives the connection: after close the publish fails, loudly."""
    app = make_app()
    received: list[int] = []

    @app.subscribe(f"{uid}.tick")
    async def on_tick(order: Order) -> None:
        received.append(order.id)

    async with app:
        for n in range(3):
            await app.publish(f"{uid}.tick", Order(id=n))
        await wait_for(lambda: received == [0, 1, 2])
    with pytest.raises(BrokerError, match="not connected"):
        await app.publish(f"{uid}.tick", Order(id=3))


async def test_handler_gets_message_context(make_app: MakeApp, uid: str) -> None:
    app = make_app()
    contexts: list[Message] = []

    @app.subscribe(f"{uid}.ctx")
    async def on_event(order: Order, msg: Message) -> None:
        contexts.append(msg)

    async with app:
        await app.publish(f"{uid}.ctx", Order(id=7), headers={"tenant": "acme"})
        await wait_for(lambda: len(contexts) == 1)
    msg = contexts[0]
    assert msg.subject == f"{uid}.ctx"
    assert msg.headers["tenant"] == "acme"
    assert msg.message_id
    assert msg.content_type.startswith("application/json")
    assert msg.decode(Order) == Order(id=7)


async def test_undecodable_event_is_dropped_and_the_next_one_handled(
    make_app: MakeApp, uid: str
) -> None:
    app = make_app()
    received: list[int] = []

    @app.subscribe(f"{uid}.orders")
    async def on_order(order: Order) -> None:
        received.append(order.id)

    async with app:
        await app.publish(f"{uid}.orders", {"id": "not a number"})
        await app.publish(f"{uid}.orders", b"\xff\x00 not json")
        await app.publish(f"{uid}.orders", Order(id=3))
        await wait_for(lambda: received == [3])


async def test_failing_subscriber_does_not_stop_the_subscription(
    make_app: MakeApp, uid: str
) -> None:
    app = make_app()
    received: list[int] = []

    @app.subscribe(f"{uid}.orders")
    async def on_order(order: Order) -> None:
        received.append(order.id)
        if order.id == 1:
            raise RuntimeError("boom")

    async with app:
        for n in (1, 2):
            await app.publish(f"{uid}.orders", Order(id=n))
        await wait_for(lambda: received == [1, 2])


async def test_sync_handlers_run_in_a_thread(make_app: MakeApp, uid: str) -> None:
    import threading

    app = make_app()
    threads: list[int] = []

    @app.subscribe(f"{uid}.sync")
    def on_event(body: str) -> None:
        threads.append(threading.get_ident())

    async with app:
        await app.publish(f"{uid}.sync", "hello")
        await wait_for(lambda: len(threads) == 1)
    assert threads[0] != threading.get_ident()


@pytest.mark.parametrize(("body", "param"), [(b"\x00raw", bytes), ("text", str), ({"a": 1}, dict)])
async def test_bytes_str_and_dict_bodies(
    make_app: MakeApp, uid: str, body: object, param: type
) -> None:
    app = make_app()
    got: list[object] = []

    async def handler(value: object) -> None:
        got.append(value)

    handler.__annotations__["value"] = param
    app.subscribe(f"{uid}.raw")(handler)
    async with app:
        await app.publish(f"{uid}.raw", body)
        await wait_for(lambda: got == [body])


_ONE_EVENT: contextvars.ContextVar[int | None] = contextvars.ContextVar("one", default=None)


@pytest.mark.parametrize("concurrency", [1, 2])
async def test_a_context_variable_one_event_sets_is_not_seen_by_the_next(
    make_app: MakeApp, uid: str, concurrency: int
) -> None:
    """Each event's handler runs in a context of its own (as a task of its own would), also
    when it runs after another in the same task: one after the other (``concurrency=1``) or in
    a slot that frees (NATS's backlog). Odd events' handlers wait once, even ones do not."""
    app = make_app()
    seen: list[int | None] = []

    @app.subscribe(f"{uid}.ctx", concurrency=concurrency)
    async def ctx(n: int) -> None:
        seen.append(_ONE_EVENT.get())
        _ONE_EVENT.set(n)
        if n % 2:
            await asyncio.sleep(0)

    async with app:
        for n in range(40):
            await app.publish(f"{uid}.ctx", n)
        await wait_for(lambda: len(seen) == 40, what="the 40 events handled")
    assert seen == [None] * 40


_STARTED: contextvars.ContextVar[str | None] = contextvars.ContextVar("started", default=None)


@pytest.mark.parametrize("concurrency", [1, 2])
async def test_a_context_variable_the_lifespan_sets_is_seen_by_every_event(
    make_app: MakeApp, uid: str, concurrency: int
) -> None:
    """What the App's lifespan sets (after the App connected) is in every handler call's
    context, as what was set before ``start`` is (on NATS some calls start in the connection's
    reading task, which the App made before its lifespan ran)."""
    app = make_app()
    seen: list[str | None] = []

    @app.lifespan
    async def lifespan(app: App) -> AsyncIterator[None]:
        _STARTED.set("lifespan")
        yield

    @app.subscribe(f"{uid}.ctx", concurrency=concurrency)
    async def ctx(n: int) -> None:
        seen.append(_STARTED.get())
        if n % 2:
            await asyncio.sleep(0)

    async with app:
        for n in range(20):
            await app.publish(f"{uid}.ctx", n)
        await wait_for(lambda: len(seen) == 20, what="the 20 events handled")
    assert seen == ["lifespan"] * 20


@pytest.mark.parametrize("concurrency", [1, 2])
async def test_events_are_handled_when_handlers_cancel_their_own_task(
    make_app: MakeApp, uid: str, concurrency: int
) -> None:
    """A handler that sets a context variable and then cancels its own task (the handler, not
    the App) stops neither the subscription nor the events waiting for a slot (NATS with
    ``concurrency=2`` stranded them; memory and NATS with 1 stopped handling), and the events
    handled after it do not see the value it set."""
    app = make_app()
    seen: list[int | None] = []
    handled: set[int] = set()

    @app.subscribe(f"{uid}.cancels", concurrency=concurrency)
    async def cancels(n: int) -> None:
        seen.append(_ONE_EVENT.get())
        _ONE_EVENT.set(n)
        if len(seen) <= concurrency:  # every slot's first call, while the other events wait
            cancel_own_task()
        await asyncio.sleep(0.01)
        handled.add(n)

    async with app:
        for n in range(20):
            await app.publish(f"{uid}.cancels", n)
        expected = 20 - concurrency
        await wait_for(lambda: len(handled) >= expected, timeout=5, what="the events not cancelled")
    assert seen == [None] * len(seen)
