"""Pub-sub on NATS: closing subscriptions, and durable subscriptions on JetStream."""

from __future__ import annotations

import asyncio

import nats
import pytest

from pigeon import App, Message
from pigeon.testing.conformance.models import Order
from pigeon.testing.waiting import wait_for


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_closing_waits_for_the_handler_in_flight_and_takes_no_new_event(
    nats_url: str, uid: str, concurrency: int
) -> None:
    leaving, staying = App(nats_url, shutdown_timeout=10), App(nats_url)
    started, release = asyncio.Event(), asyncio.Event()
    handled: dict[str, list[int]] = {"leaving": [], "staying": []}

    @leaving.subscribe(f"{uid}.work", group="g", concurrency=concurrency)
    async def slow(order: Order) -> None:
        started.set()
        await release.wait()
        handled["leaving"].append(order.id)

    @staying.subscribe(f"{uid}.work", group="g")
    async def fast(order: Order) -> None:
        handled["staying"].append(order.id)

    await leaving.start()
    await leaving.publish(f"{uid}.work", Order(id=0))  # the group's only member takes it
    await asyncio.wait_for(started.wait(), 5)
    async with staying:
        closing = asyncio.create_task(leaving.close())
        for n in range(1, 100):  # until the group hands events to the member that stays
            await staying.publish(f"{uid}.work", Order(id=n))
            if handled["staying"]:
                break
            await asyncio.sleep(0.01)  # publishing pace, not a wait for a condition
        assert handled["staying"], "events go to the member that stays"
        assert not closing.done(), "close waits for the handler in flight"
        release.set()
        await closing
    assert handled["leaving"] == [0], "the closing member took no new event"


async def test_a_handler_past_the_shutdown_timeout_is_cancelled(nats_url: str, uid: str) -> None:
    app = App(nats_url, shutdown_timeout=0.2)
    started = asyncio.Event()
    cancelled = asyncio.Event()

    @app.subscribe(f"{uid}.hang")
    async def hang(order: Order) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    await app.start()
    await app.publish(f"{uid}.hang", Order(id=1))
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.wait_for(app.close(), 5)
    assert cancelled.is_set()


async def test_a_durable_event_whose_subscriber_died_is_delivered_again(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    first = App(nats_url, shutdown_timeout=0)
    started = asyncio.Event()

    @first.subscribe(f"{uid}.audit", durable="audit")
    async def hang(order: Order) -> None:
        started.set()
        await asyncio.Event().wait()

    async with first:
        await first.publish(f"{uid}.audit", Order(id=7))
        await asyncio.wait_for(started.wait(), 5)
    second = App(nats_url)
    seen: list[tuple[int, int]] = []

    @second.subscribe(f"{uid}.audit", durable="audit")
    async def audit(order: Order, msg: Message) -> None:
        seen.append((order.id, msg.attempt))

    async with second:
        await wait_for(lambda: seen == [(7, 2)], what="the event again, second delivery")
