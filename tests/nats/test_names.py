"""The NATS names of pigeon's groups, streams and consumers: what a raw client uses to join a
group, what earlier versions' deployments find again, and NATS's 255-byte limit on names."""

from __future__ import annotations

import json

import nats
import pytest
from nats.aio.msg import Msg

from pigeon import App
from pigeon.testing.conformance.models import Order
from pigeon.testing.waiting import wait_for
from pigeon.transports.nats.names import (
    MAX_NAME_BYTES,
    consumer_name,
    event_stream,
    queue_group,
    queue_token,
)
from pigeon.transports.nats.requests import RPC_GROUP
from tests.brokers.nats import stream_names


def test_queue_group_names_are_distinct_for_distinct_subjects_and_groups() -> None:
    pairs = [
        ("a", "b:c"),
        ("a:b", "c"),
        ("a.*", "g"),
        ("a.>", "g"),
        ("a", "g h"),
        ("a", "g%20h"),
        ("a", "g\th"),
        ("a", RPC_GROUP),
    ]
    names = [queue_group(subject, group) for subject, group in pairs]
    assert len(set(names)) == len(pairs)
    assert RPC_GROUP not in names
    assert not any(char.isspace() for name in names for char in name)
    assert queue_group("orders.*", "billing team: eu") == "orders.*:billing%20team%3A%20eu"


def test_stream_and_consumer_names_tell_apart_what_the_old_spelling_merged() -> None:
    assert consumer_name("audit_v1") == "audit_v1"  # as before: existing consumers found again
    assert consumer_name("audit.v1").startswith("audit_v1_")
    assert consumer_name("audit.v1") != consumer_name("audit:v1")
    assert event_stream("orders.created") == "PIGEON_EV_orders_created"
    assert event_stream("orders_created") != event_stream("orders.created")
    assert event_stream("orders.*") != event_stream("orders.STAR")
    assert queue_token("invoices.render", 238) == "invoices_render"
    long = "x." * 600
    assert queue_token(long, 238) != queue_token(long + "y", 238)
    assert len(consumer_name("d" * 1000)) == MAX_NAME_BYTES
    assert len(event_stream(long)) == MAX_NAME_BYTES
    assert len(queue_token(long, 238)) == 238


@pytest.mark.parametrize(
    ("group", "queue"), [("billing", "billing"), ("billing team: eu", "billing%20team%3A%20eu")]
)
async def test_a_raw_client_joins_a_pigeon_group_by_its_queue_group_name(
    nats_url: str, uid: str, raw: nats.NATS, group: str, queue: str
) -> None:
    """docs/wire.md: the queue group of ``group`` on ``subject`` is ``<subject>:<group>``."""
    app = App(nats_url)
    subject = f"{uid}.orders"
    pigeon_ids: list[int] = []
    raw_ids: list[int] = []

    @app.subscribe(subject, group=group)
    async def bill(order: Order) -> None:
        pigeon_ids.append(order.id)

    async def on_raw(msg: Msg) -> None:
        raw_ids.append(json.loads(msg.data)["id"])

    await raw.subscribe(subject, queue=f"{subject}:{queue}", cb=on_raw)
    async with app:
        for n in range(40):
            await app.publish(subject, Order(id=n))
        await wait_for(lambda: set(pigeon_ids + raw_ids) == set(range(40)), what="40 events")
        await raw.flush()
    assert sorted(pigeon_ids + raw_ids) == list(range(40)), "one group: each event once"
    assert pigeon_ids, "pigeon's member took events"
    assert raw_ids, "the raw member took events"


async def test_durable_names_keep_their_consumers_unless_they_met(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    """A durable name of letters, digits, ``_`` and ``-`` keeps the consumer earlier versions
    made for it; one with other characters gets a consumer of its own."""
    app = App(nats_url)
    subject = f"{uid}.orders.created"

    for durable in ("audit_v1", "audit.v1"):

        @app.subscribe(subject, durable=durable)
        async def audit(order: Order) -> None:
            pass

    async with app:
        stream = f"PIGEON_EV_{uid}_orders_created"
        manager = raw.jetstream()
        assert (await manager.consumer_info(stream, "audit_v1")).config.filter_subject == subject
        info = await manager.consumer_info(stream, consumer_name("audit.v1"))
        assert info.config.filter_subject == subject


async def test_long_subjects_queues_and_durable_names_fit_nats_limits(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    """pigeon takes subjects up to 1024 bytes: the names made from them are cut to 255."""
    subject = f"{uid}." + "s" * 1000
    queue = f"{uid}." + "q" * 1000
    app = App(nats_url)
    events: list[int] = []
    jobs: list[int] = []

    @app.subscribe(subject, durable="d" * 400)
    async def audit(order: Order) -> None:
        events.append(order.id)

    @app.worker(queue)
    async def work(order: Order) -> None:
        jobs.append(order.id)

    async with app:
        await app.publish(subject, Order(id=1))
        await app.enqueue(queue, Order(id=2))
        await wait_for(lambda: events == [1] and jobs == [2], what="an event and a job")
    names = await stream_names(raw.jetstream())
    ours = [name for name in names if uid in name]
    assert len(ours) == 4  # the event stream; the queue's, its dead letters' and delayed jobs'
    assert all(len(name) <= MAX_NAME_BYTES for name in ours)
