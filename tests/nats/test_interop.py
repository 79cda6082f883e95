"""pigeon and plain nats-py clients, talking to each other both ways."""

from __future__ import annotations

import json

import nats

from pigeon import App, Message
from pigeon.testing.conformance.models import Job, Order, Reserve, Reserved
from pigeon.testing.waiting import wait_for
from pigeon.transports.nats.core import registered
from tests.brokers.nats import stream_names


async def test_raw_request_gets_the_reply_of_a_pigeon_rpc_handler(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    app = App(nats_url)

    @app.rpc(f"{uid}.reserve")
    async def reserve(req: Reserve) -> Reserved:
        return Reserved(sku=req.sku, left=10 - req.quantity)

    async with app:
        reply = await raw.request(f"{uid}.reserve", b'{"sku": "a", "quantity": 3}', timeout=5)
    assert json.loads(reply.data) == {"sku": "a", "left": 7}


async def test_raw_request_gets_a_pigeon_handler_error_in_headers(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    app = App(nats_url)

    @app.rpc(f"{uid}.reserve")
    async def reserve(req: Reserve) -> Reserved:
        raise LookupError("out of stock")

    async with app:
        reply = await raw.request(f"{uid}.reserve", b'{"sku": "a", "quantity": 3}', timeout=5)
    assert reply.headers is not None
    assert reply.headers["x-pigeon-error-type"] == "LookupError"
    assert reply.headers["x-pigeon-error-message"] == "out of stock"


async def test_pigeon_subscriber_receives_json_published_by_raw_nats_py(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    app = App(nats_url)
    received: list[tuple[Order, str]] = []

    @app.subscribe(f"{uid}.orders")
    async def on_order(order: Order, msg: Message) -> None:
        received.append((order, msg.content_type))

    async with app:
        await raw.publish(f"{uid}.orders", b'{"id": 5, "item": "bolt"}')
        await wait_for(lambda: len(received) == 1)
    assert received == [(Order(id=5, item="bolt"), "")], "no content type: read as JSON"


async def test_pigeon_request_is_answered_by_a_raw_responder(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    async def respond(msg: nats.aio.msg.Msg) -> None:
        request = json.loads(msg.data)
        await msg.respond(json.dumps({"sku": request["sku"], "left": 1}).encode())

    await raw.subscribe(f"{uid}.reserve", cb=respond)
    await registered(raw)  # nats-py 2.16: flush may overtake what it buffered
    app = App(nats_url)
    async with app:
        reply = await app.request(f"{uid}.reserve", Reserve(sku="z", quantity=2), reply=Reserved)
    assert reply == Reserved(sku="z", left=1)


async def test_raw_jetstream_publish_reaches_a_pigeon_worker(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    app = App(nats_url)
    done: list[int] = []

    @app.worker(f"{uid}.jobs")
    async def work(job: Job) -> None:
        done.append(job.n)

    async with app:
        ack = await raw.jetstream().publish(f"pigeon.queue.{uid}.jobs", b'{"n": 4}')
        await wait_for(lambda: done == [4])
    assert ack.stream == f"PIGEON_Q_{uid}_jobs"


async def test_durable_subscription_uses_a_stream_the_user_made(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    await raw.jetstream().add_stream(name=f"ORDERS_{uid}", subjects=[f"{uid}.orders.>"])
    app = App(nats_url)
    received: list[int] = []

    @app.subscribe(f"{uid}.orders.created", durable="audit")
    async def audit(order: Order) -> None:
        received.append(order.id)

    async with app:
        await app.publish(f"{uid}.orders.created", Order(id=1))
        await wait_for(lambda: received == [1])
    names = await stream_names(raw.jetstream())
    assert not [name for name in names if name and name.startswith(f"PIGEON_EV_{uid}")]


async def test_durable_and_plain_subscribers_both_get_each_event(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    app = App(nats_url)
    durable: list[int] = []
    plain: list[int] = []

    @app.subscribe(f"{uid}.audit", durable=f"{uid}-audit")
    async def keep(order: Order) -> None:
        durable.append(order.id)

    @app.subscribe(f"{uid}.audit")
    async def watch(order: Order) -> None:
        plain.append(order.id)

    async with app:
        await raw.publish(f"{uid}.audit", b'{"id": 1}')
        await app.publish(f"{uid}.audit", Order(id=2))
        await wait_for(lambda: sorted(durable) == [1, 2] and sorted(plain) == [1, 2])
