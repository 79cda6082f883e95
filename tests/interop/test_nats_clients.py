"""pigeon and NATS clients it did not write, written as their own docs write them: raw nats-py
(request, publish, JetStream publish) and nats-py's ``nats.micro`` services."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import nats
import nats.micro
import pytest
from nats.micro.request import Request

from pigeon import App, RemoteError
from pigeon.testing.conformance.models import Job, Order, Reserve, Reserved
from pigeon.testing.waiting import wait_for
from pigeon.transports.nats.core import registered
from tests.brokers.nats import stream_names


@pytest.fixture
async def nc(nats_url: str, uid: str) -> AsyncIterator[nats.NATS]:
    """A nats-py connection; at the end, every stream whose name holds ``uid`` is deleted."""
    client = await nats.connect(nats_url)
    yield client
    js = client.jetstream()
    for name in await stream_names(js):
        if uid in name:
            await js.delete_stream(name)
    await client.close()


async def test_raw_request_reads_a_pigeon_handler_error(
    nats_url: str, uid: str, nc: nats.NATS
) -> None:
    app = App(nats_url)

    @app.rpc(f"{uid}.reserve")
    async def reserve(req: Reserve) -> Reserved:
        raise LookupError("out of stock")

    async with app:
        msg = await nc.request(f"{uid}.reserve", b'{"sku": "a", "quantity": 3}', timeout=5)
    assert json.loads(msg.data) == {"error": {"type": "LookupError", "message": "out of stock"}}
    assert msg.headers is not None
    assert msg.headers["content-type"] == "application/json"
    assert msg.headers["Nats-Service-Error"] == "out of stock"
    assert msg.headers["Nats-Service-Error-Code"] == "500"
    assert msg.headers["x-pigeon-error-type"] == "LookupError"


async def test_raw_request_that_fails_validation_gets_code_400(
    nats_url: str, uid: str, nc: nats.NATS
) -> None:
    app = App(nats_url)

    @app.rpc(f"{uid}.reserve")
    async def reserve(req: Reserve) -> Reserved:
        return Reserved(sku=req.sku, left=1)

    async with app:
        msg = await nc.request(f"{uid}.reserve", b'{"sku": "a"}', timeout=5)
    assert msg.headers is not None
    assert msg.headers["Nats-Service-Error-Code"] == "400"
    assert json.loads(msg.data)["error"]["type"] == "DecodeError"
    assert "quantity" in msg.headers["Nats-Service-Error"]


async def test_micro_service_respond_error_is_a_remote_error(
    nats_url: str, uid: str, nc: nats.NATS
) -> None:
    async def reserve(req: Request) -> None:
        await req.respond_error("409", "sku a is reserved")

    service = await nats.micro.add_service(nc, name=f"inventory-{uid}", version="0.1.0")
    await service.add_endpoint(name="reserve", subject=f"{uid}.reserve", handler=reserve)
    try:
        async with App(nats_url) as app:
            with pytest.raises(RemoteError) as caught:
                await app.request(f"{uid}.reserve", Reserve(sku="a", quantity=1))
    finally:
        await service.stop()
    assert (caught.value.type, caught.value.message, caught.value.code) == (
        "ServiceError",
        "sku a is reserved",
        409,
    )


async def test_micro_service_handler_that_raises_is_a_remote_error(
    nats_url: str, uid: str, nc: nats.NATS
) -> None:
    async def reserve(req: Request) -> None:
        raise RuntimeError("database down")

    service = await nats.micro.add_service(nc, name=f"inventory-{uid}", version="0.1.0")
    await service.add_endpoint(name="reserve", subject=f"{uid}.reserve", handler=reserve)
    try:
        async with App(nats_url) as app:
            with pytest.raises(RemoteError) as caught:
                await app.request(f"{uid}.reserve", Reserve(sku="a", quantity=1))
    finally:
        await service.stop()
    assert caught.value.code == 500
    assert "database down" in caught.value.message


async def test_micro_service_reply_is_decoded(nats_url: str, uid: str, nc: nats.NATS) -> None:
    async def reserve(req: Request) -> None:
        order = json.loads(req.data)
        await req.respond(json.dumps({"sku": order["sku"], "left": 4}).encode())

    service = await nats.micro.add_service(nc, name=f"inventory-{uid}", version="0.1.0")
    await service.add_endpoint(name="reserve", subject=f"{uid}.reserve", handler=reserve)
    try:
        async with App(nats_url) as app:
            reply = await app.request(
                f"{uid}.reserve", Reserve(sku="b", quantity=1), reply=Reserved
            )
    finally:
        await service.stop()
    assert reply == Reserved(sku="b", left=4)


async def test_raw_publish_reaches_a_pigeon_subscriber(
    nats_url: str, uid: str, nc: nats.NATS
) -> None:
    app = App(nats_url)
    got: list[Order] = []

    @app.subscribe(f"{uid}.orders.*")
    async def on_order(order: Order) -> None:
        got.append(order)

    async with app:
        await nc.publish(f"{uid}.orders.created", b'{"id": 7, "item": "bolt"}')
        await wait_for(lambda: got == [Order(id=7, item="bolt")])


async def test_pigeon_event_reaches_a_raw_subscriber(
    nats_url: str, uid: str, nc: nats.NATS
) -> None:
    sub = await nc.subscribe(f"{uid}.orders.created")
    await registered(nc)  # nats-py 2.16: flush may overtake what it buffered
    async with App(nats_url) as app:
        await app.publish(f"{uid}.orders.created", Order(id=8), headers={"tenant": "acme"})
    msg = await sub.next_msg(timeout=10)
    assert json.loads(msg.data) == {"id": 8, "item": "widget"}
    assert msg.headers is not None
    assert msg.headers["content-type"] == "application/json"
    assert msg.headers["tenant"] == "acme"
    assert msg.headers["Nats-Msg-Id"]


async def test_raw_jetstream_publish_reaches_a_pigeon_worker(
    nats_url: str, uid: str, nc: nats.NATS
) -> None:
    app = App(nats_url)
    done: list[int] = []

    @app.worker(f"{uid}.jobs")
    async def work(job: Job) -> None:
        done.append(job.n)

    async with app:
        js = nc.jetstream()
        ack = await js.publish(
            f"pigeon.queue.{uid}.jobs", b'{"n": 4}', headers={"Nats-Msg-Id": "x"}
        )
        again = await js.publish(
            f"pigeon.queue.{uid}.jobs", b'{"n": 4}', headers={"Nats-Msg-Id": "x"}
        )
        await wait_for(lambda: done == [4])
    assert again.duplicate, "JetStream drops a retried publish with the same Nats-Msg-Id"
    assert ack.stream == f"PIGEON_Q_{uid}_jobs"


async def test_raw_request_to_a_subject_only_subscribers_cover_is_an_event(
    nats_url: str, uid: str, nc: nats.NATS
) -> None:
    """A foreign request is told from a publish only by pigeon's deadline header, so it reaches
    a subscriber as an event and nobody answers it (docs/wire.md): no "not served" that would
    race an rpc server elsewhere."""
    app = App(nats_url)
    got: list[Order] = []

    @app.subscribe(f"{uid}.audit.>")
    async def audit(order: Order) -> None:
        got.append(order)

    async with app:
        with pytest.raises(nats.errors.TimeoutError):
            await nc.request(f"{uid}.audit.orders", b'{"id": 9, "item": "nut"}', timeout=0.5)
        await wait_for(lambda: got == [Order(id=9, item="nut")])
