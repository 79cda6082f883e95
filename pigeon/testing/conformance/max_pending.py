"""``subscribe(max_pending=N)``: the most events a subscription holds in its process.

The limit is the same code on every transport; what happens to the events beyond it is each
broker's own (``docs/patterns/pubsub.md``), and ``BEYOND_THE_LIMIT`` names it per transport.
Most tests hold a subscriber's handlers (``max_pending`` twice its ``concurrency``) until the
test releases them, and publish ten events; one sends a burst far over ``max_pending``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import pytest

from pigeon import App
from pigeon.testing.conformance.fixtures import Backend, MakeApp, requires
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_for

MAX_PENDING = 2
EVENTS = 10
BURST = 40
"""Events on as many subjects, for the tests of how drops are counted."""


@dataclass(frozen=True)
class Beyond:
    """What a plain subscription does with events beyond its ``max_pending``.

    ``publisher_waits``: ``publish`` waits until the subscription has room (memory's
    backpressure). ``drops``: the events beyond the limit are lost (nobody keeps them).
    ``counted``: those drops are counted in ``transport.dropped_events`` (the metric
    ``pigeon_events_dropped_total``). Neither: the broker keeps them until there is room.
    """

    publisher_waits: bool = False
    drops: bool = False
    counted: bool = False


BEYOND_THE_LIMIT: dict[str, Beyond] = {
    "memory": Beyond(publisher_waits=True),
    "nats": Beyond(drops=True, counted=True),
    "redis": Beyond(drops=True, counted=True),
    "rabbitmq": Beyond(),
}
"""Transport -> what a plain subscription does beyond ``max_pending``."""

DURABLE_IN_HAND: dict[str, int] = {"rabbitmq": MAX_PENDING}
"""Transport -> events a held durable subscriber has taken from the broker (RabbitMQ: its
prefetch, ``max_pending``); elsewhere its ``concurrency`` (1): those consumers take no more
than they have free slots, which ``max_pending`` (at least ``concurrency``) already allows."""


OWN_OPTIONS: dict[str, set[str]] = {"nats": {"pending_bytes_limit"}}
"""Transport -> the App options beyond ``max_pending`` its slow-consumer advice may name."""


def transport_of(backend: Backend) -> str:
    return backend.name.split("-")[0]


def held_subscriber(
    app: App,
    subject: str,
    seen: list[int],
    release: asyncio.Event,
    *,
    durable: str | None = None,
    concurrency: int = 1,
) -> None:
    """Subscribe on ``app`` a handler that records each event and waits for ``release``, with
    ``max_pending`` twice its ``concurrency``."""

    @app.subscribe(subject, durable=durable, concurrency=concurrency, max_pending=2 * concurrency)
    async def held(event: Job) -> None:
        seen.append(event.n)
        await release.wait()


async def test_a_durable_subscription_takes_no_more_than_max_pending(
    backend: Backend, make_app: MakeApp, uid: str
) -> None:
    requires(backend, "durable")
    subscriber, publisher = make_app(), make_app()
    subject, name = f"{uid}.placed", f"{uid}-audit"
    seen: list[int] = []
    release = asyncio.Event()
    held_subscriber(subscriber, subject, seen, release, durable=name)
    in_hand = DURABLE_IN_HAND.get(transport_of(backend), 1)

    async with subscriber, publisher:
        for n in range(EVENTS):
            await publisher.publish(subject, Job(n))
        await wait_for(lambda: seen == [0], what="the first event held")

        async def the_rest_kept_by_the_broker() -> bool:
            backlog = await publisher.backlog(subject, durable=name)
            assert backlog.unacked is None or backlog.unacked <= MAX_PENDING
            return backlog.ready == EVENTS - in_hand

        await wait_for(the_rest_kept_by_the_broker, what=f"{EVENTS - in_hand} events ready")
        release.set()
        await wait_for(lambda: len(seen) == EVENTS, what="every event handled")
    assert seen == list(range(EVENTS))


@pytest.mark.parametrize("concurrency", [1, 2])
async def test_a_plain_subscription_holds_no_more_than_max_pending(
    backend: Backend, make_app: MakeApp, uid: str, concurrency: int
) -> None:
    subscriber, publisher = make_app(), make_app()
    subject, max_pending = f"{uid}.placed", 2 * concurrency
    beyond = BEYOND_THE_LIMIT[transport_of(backend)]
    seen: list[int] = []
    witnessed: list[int] = []  # an unlimited subscriber beside it: every event has arrived
    release = asyncio.Event()
    held_subscriber(subscriber, subject, seen, release, concurrency=concurrency)

    @subscriber.subscribe(subject)
    async def witness(event: Job) -> None:
        witnessed.append(event.n)

    sent = 0

    async def publish_all() -> None:
        nonlocal sent
        for n in range(EVENTS):
            await publisher.publish(subject, Job(n))
            sent += 1

    async with subscriber, publisher:
        publishing = asyncio.create_task(publish_all())
        await wait_for(lambda: len(seen) > 0, what="the first event held")
        if beyond.publisher_waits:
            await wait_for(lambda: sent == max_pending, what=f"{max_pending} events sent")
            assert not publishing.done(), "publish did not wait for the held subscriber"
        else:
            await publishing
            await wait_for(lambda: len(witnessed) == EVENTS, what="every event arrived")
        if beyond.counted:
            dropped = subscriber.transport.dropped_events  # type: ignore[attr-defined]
            await wait_for(
                lambda: sum(dropped.values()) >= EVENTS - max_pending, what="the drops counted"
            )
        release.set()
        await publishing
        if not beyond.drops:
            await wait_for(lambda: len(seen) == EVENTS, what="every event handled")
            assert sorted(seen) == list(range(EVENTS))
            return

        async def a_later_event_handled() -> bool:  # it comes after those the subscriber kept
            await publisher.publish(subject, Job(EVENTS))
            return EVENTS in seen

        await wait_for(a_later_event_handled, what="an event published later handled")
    kept = sorted(n for n in seen if n < EVENTS)
    assert kept == list(range(len(kept)))
    assert len(kept) <= max_pending
    if beyond.counted:
        assert sum(dropped.values()) >= EVENTS - len(kept)


async def test_drops_are_counted_and_logged_by_subscription(
    backend: Backend, make_app: MakeApp, uid: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Two overlapping wildcard subscriptions, events on many concrete subjects: the drops are
    counted and logged under each subscription's subject as declared (the metric's label), never
    under an event's concrete subject, and the two are not merged."""
    if not BEYOND_THE_LIMIT[transport_of(backend)].counted:
        pytest.skip(f"{backend.name} drops no events beyond max_pending")
    caplog.set_level(logging.WARNING, logger="pigeon")
    subscriber, publisher = make_app(), make_app()
    declared = {f"{uid}.>", f"{uid}.*"}
    release = asyncio.Event()
    witnessed: list[int] = []
    for subject in declared:
        held_subscriber(subscriber, subject, [], release)

    @subscriber.subscribe(f"{uid}.*")
    async def witness(event: Job) -> None:
        witnessed.append(event.n)

    async with subscriber, publisher:
        for n in range(BURST):
            await publisher.publish(f"{uid}.s{n}", Job(n))
        await wait_for(lambda: len(witnessed) == BURST, what="every event arrived")
        dropped = subscriber.transport.dropped_events  # type: ignore[attr-defined]
        await wait_for(lambda: set(dropped) == declared, what=f"drops counted under {declared}")
        release.set()
    warned = [r.getMessage() for r in caplog.records if "slow consumer" in r.getMessage()]
    assert warned, "no slow-consumer warning"
    assert all(f"{uid}.s" not in line for line in warned), warned
    foreign = {"pending_bytes_limit"} - OWN_OPTIONS.get(transport_of(backend), set())
    assert not [line for line in warned for name in foreign if name in line], "others' options"
    # one line per subscription at the first drop, one at close for the rest
    assert len(warned) <= 2 * len(declared), f"{len(warned)} warnings for {BURST} events"


async def test_a_burst_fills_every_free_slot_and_drops_exactly_the_rest(
    backend: Backend, make_app: MakeApp, uid: str
) -> None:
    """``max_pending == concurrency``: a burst far over the limit gives each handler slot an
    event; every other event is dropped and counted, one each (nothing lost uncounted)."""
    beyond = BEYOND_THE_LIMIT[transport_of(backend)]
    if not (beyond.drops and beyond.counted):
        pytest.skip(f"{backend.name} drops no events beyond max_pending")
    subscriber, publisher = make_app(), make_app()
    subject, slots = f"{uid}.placed", 8
    seen: list[int] = []
    witnessed: list[int] = []
    release = asyncio.Event()

    @subscriber.subscribe(subject, concurrency=slots, max_pending=slots)
    async def held(event: Job) -> None:
        seen.append(event.n)
        await release.wait()

    @subscriber.subscribe(subject)
    async def witness(event: Job) -> None:
        witnessed.append(event.n)

    async with subscriber, publisher:
        for n in range(BURST * 5):
            await publisher.publish(subject, Job(n))
        await wait_for(lambda: len(witnessed) == BURST * 5, what="every event arrived")
        dropped = subscriber.transport.dropped_events  # type: ignore[attr-defined]
        await wait_for(lambda: len(seen) == slots, what=f"all {slots} slots busy")
        await wait_for(lambda: sum(dropped.values()) >= BURST * 5 - slots, what="the drops counted")
        release.set()
        await wait_for(lambda: len(seen) == slots, what=f"{slots} events handled")
    assert len(set(seen)) == slots
    assert dict(dropped) == {subject: BURST * 5 - slots}
