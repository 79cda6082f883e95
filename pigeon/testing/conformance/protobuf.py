"""Protobuf beside JSON on every transport: content-type negotiation and clear mismatches."""

from __future__ import annotations

from typing import Any

import pytest

from pigeon import JSON, PROTOBUF, Message, RemoteError
from pigeon import headers as h
from pigeon.testing.conformance import shop_pb2
from pigeon.testing.conformance.fixtures import MakeApp
from pigeon.testing.conformance.models import Order
from pigeon.testing.waiting import wait_dead_letters, wait_for


async def test_protobuf_event_reaches_a_protobuf_handler(make_app: MakeApp, uid: str) -> None:
    app = make_app()
    got: list[tuple[shop_pb2.Order, Message]] = []

    @app.subscribe(f"{uid}.pb")
    async def on_order(order: shop_pb2.Order, msg: Message) -> None:
        got.append((order, msg))

    async with app:
        await app.publish(f"{uid}.pb", shop_pb2.Order(id=7, sku="kettle", quantity=2))
        await wait_for(lambda: len(got) == 1)
    order, msg = got[0]
    assert order == shop_pb2.Order(id=7, sku="kettle", quantity=2)
    assert msg.content_type == "application/x-protobuf"
    assert msg.headers[h.PROTOBUF_TYPE] == "pigeon.test.Order"


async def test_one_subscriber_takes_json_and_protobuf(make_app: MakeApp, uid: str) -> None:
    app = make_app()
    got: list[Any] = []

    @app.subscribe(f"{uid}.mixed")
    async def on_order(order: shop_pb2.Order | Order) -> None:
        got.append(order)

    async with app:
        await app.publish(f"{uid}.mixed", Order(id=1))
        await app.publish(f"{uid}.mixed", shop_pb2.Order(id=2))
        await wait_for(lambda: len(got) == 2)
    assert got == [Order(id=1), shop_pb2.Order(id=2)]


async def test_per_call_codec_sends_protobuf_as_json(make_app: MakeApp, uid: str) -> None:
    app = make_app()
    got: list[dict[str, Any]] = []

    @app.subscribe(f"{uid}.json")
    async def on_order(order: dict[str, Any], msg: Message) -> None:
        got.append({"order": order, "type": msg.content_type})

    async with app:
        await app.publish(f"{uid}.json", shop_pb2.Order(id=3, sku="x"), codec=JSON)
        await wait_for(lambda: len(got) == 1)
    assert got[0] == {"order": {"id": "3", "sku": "x"}, "type": "application/json"}


@pytest.mark.parametrize(
    ("send", "expected_error"),
    [
        (lambda: Order(id=1), "expected application/x-protobuf for pigeon.test.Order"),
        (lambda: shop_pb2.Reserved(sku="x"), "expected protobuf pigeon.test.Order, got"),
    ],
)
async def test_mismatched_payloads_are_dead_lettered_at_once(
    make_app: MakeApp, uid: str, send: Any, expected_error: str
) -> None:
    app = make_app()
    calls = 0

    @app.worker(f"{uid}.pbjobs")
    async def work(order: shop_pb2.Order) -> None:
        nonlocal calls
        calls += 1

    async with app:
        await app.enqueue(f"{uid}.pbjobs", send())
        letters = await wait_dead_letters(app, f"{uid}.pbjobs", 1)
    assert calls == 0
    assert letters[0].failure is not None
    assert letters[0].failure.type == "DecodeError"
    assert expected_error in letters[0].failure.message


async def test_protobuf_body_for_a_pydantic_worker_is_dead_lettered(
    make_app: MakeApp, uid: str
) -> None:
    app = make_app()

    @app.worker(f"{uid}.jsonjobs")
    async def work(order: Order) -> None: ...

    async with app:
        await app.enqueue(f"{uid}.jsonjobs", shop_pb2.Order(id=1))
        letters = await wait_dead_letters(app, f"{uid}.jsonjobs", 1)
    assert letters[0].failure is not None
    message = letters[0].failure.message
    assert "expected application/json for Order, got application/x-protobuf" in message
    assert "pigeon.test.Order" in message


async def test_truncated_protobuf_is_dead_lettered(make_app: MakeApp, uid: str) -> None:
    app = make_app()
    body = shop_pb2.Order(id=1, sku="a long enough sku").SerializeToString()[:-3]

    @app.worker(f"{uid}.truncated")
    async def work(order: shop_pb2.Order) -> None: ...

    async with app:
        await app.enqueue(
            f"{uid}.truncated", body, headers={h.PROTOBUF_TYPE: "pigeon.test.Order"}, codec=PROTOBUF
        )
        letters = await wait_dead_letters(app, f"{uid}.truncated", 1)
    assert letters[0].failure is not None
    assert "invalid protobuf pigeon.test.Order" in letters[0].failure.message


async def test_protobuf_rpc_replies_in_the_request_codec(make_app: MakeApp, uid: str) -> None:
    server, client = make_app(), make_app()

    @server.rpc(f"{uid}.reserve")
    async def reserve(order: shop_pb2.Order | Order) -> shop_pb2.Reserved:
        quantity = order.quantity if isinstance(order, shop_pb2.Order) else 0
        return shop_pb2.Reserved(sku="kettle", left=5 - quantity)

    async with server, client:
        typed = await client.request(
            f"{uid}.reserve", shop_pb2.Order(sku="kettle", quantity=2), reply=shop_pb2.Reserved
        )
        as_json = await client.request(f"{uid}.reserve", Order(id=1, item="kettle"))
    assert typed == shop_pb2.Reserved(sku="kettle", left=3)
    assert as_json == {"sku": "kettle", "left": 5}


async def test_protobuf_request_of_the_wrong_type_is_a_remote_error(
    make_app: MakeApp, uid: str
) -> None:
    server, client = make_app(), make_app()

    @server.rpc(f"{uid}.typed")
    async def typed(order: shop_pb2.Order) -> shop_pb2.Reserved:
        return shop_pb2.Reserved()

    async with server, client:
        with pytest.raises(RemoteError) as caught:
            await client.request(f"{uid}.typed", shop_pb2.Reserved(sku="x"))
    assert caught.value.type == "DecodeError"
    assert "pigeon.test.Reserved" in caught.value.message
