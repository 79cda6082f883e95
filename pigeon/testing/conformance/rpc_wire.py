"""Request-reply on the wire: what a reply looks like to any client, read through the transport
under test (its ``Requests`` seam, below pigeon's requester), and how pigeon's requester reads
replies that other servers send."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from pigeon import PROTOBUF, RemoteError
from pigeon import headers as h
from pigeon.app import App
from pigeon.message import Envelope, new_id
from pigeon.testing.conformance import shop_pb2
from pigeon.testing.conformance.fixtures import MakeApp
from pigeon.testing.conformance.models import Reserve, Reserved
from pigeon.transports.base import Delivery

PROTOBUF_CONTENT_TYPES = (
    "application/x-protobuf",
    "application/protobuf",
    "application/vnd.google.protobuf",
)


async def raw_request(
    app: App, subject: str, body: bytes, content_type: str = "application/json"
) -> Envelope:
    """Send ``body`` as a request through the App's transport and return the reply as it came:
    body, content type and headers, before pigeon's requester looks at it."""
    message_id = new_id()
    headers = {h.DEADLINE: repr(time.time() + 10)}
    request = Envelope(body, headers, content_type, message_id, message_id, None, time.time())
    return await app.transport.requests.request(subject, request, 10)


async def test_handler_error_reply_is_readable_json(make_app: MakeApp, uid: str) -> None:
    server, client = make_app(), make_app()

    @server.rpc(f"{uid}.fail")
    async def fail(req: Reserve) -> Reserved:
        raise LookupError(f"out of stock: {req.sku}")

    async with server, client:
        reply = await raw_request(client, f"{uid}.fail", b'{"sku": "x", "quantity": 1}')
    assert reply.content_type == "application/json"
    assert json.loads(reply.body) == {
        "error": {"type": "LookupError", "message": "out of stock: x"}
    }
    assert reply.headers[h.ERROR_TYPE] == "LookupError"
    assert reply.headers[h.ERROR_MESSAGE] == "out of stock: x"
    assert reply.headers[h.ERROR_CODE] == "500"


async def test_invalid_request_reply_is_readable_json_with_code_400(
    make_app: MakeApp, uid: str
) -> None:
    server, client = make_app(), make_app()

    @server.rpc(f"{uid}.reserve")
    async def reserve(req: Reserve) -> Reserved:
        return Reserved(sku=req.sku, left=0)

    async with server, client:
        reply = await raw_request(client, f"{uid}.reserve", b'{"sku": "a", "quantity": "many"}')
        with pytest.raises(RemoteError) as caught:
            await client.request(f"{uid}.reserve", {"sku": "a", "quantity": "many"})
    error = json.loads(reply.body)["error"]
    assert error["type"] == "DecodeError"
    assert "quantity" in error["message"]
    assert reply.headers[h.ERROR_CODE] == "400"
    assert (caught.value.type, caught.value.code) == ("DecodeError", 400)


async def test_remote_error_carries_the_code(make_app: MakeApp, uid: str) -> None:
    server, client = make_app(), make_app()

    @server.rpc(f"{uid}.fail")
    async def fail(n: int) -> int:
        raise ValueError("no")

    async with server, client:
        with pytest.raises(RemoteError) as caught:
            await client.request(f"{uid}.fail", 1)
    assert (caught.value.type, caught.value.message, caught.value.code) == ("ValueError", "no", 500)


async def test_a_reply_shaped_like_an_error_is_a_reply(make_app: MakeApp, uid: str) -> None:
    server, client = make_app(), make_app()
    shaped = {"error": {"type": "LookupError", "message": "a value, not a failure"}}

    @server.rpc(f"{uid}.shaped")
    async def answer(n: int) -> dict[str, Any]:
        return shaped

    async with server, client:
        assert await client.request(f"{uid}.shaped", 1) == shaped


async def test_nats_service_error_headers_raise_remote_error(make_app: MakeApp, uid: str) -> None:
    """An error reply in the NATS services form (headers only, any body) from a server that is
    not pigeon, carried by whatever transport is under test."""
    server, client = make_app(), make_app()
    subject = f"{uid}.service"

    async def foreign_server(delivery: Delivery) -> None:
        headers = {h.SERVICE_ERROR: "inventory is closed", h.SERVICE_ERROR_CODE: "503"}
        request = delivery.envelope
        answer = Envelope(b"", headers, "", new_id(), request.correlation, None, time.time())
        assert request.reply_to is not None
        await server.transport.requests.reply(request.reply_to, answer)
        if (acking := delivery.ack()) is not None:
            await acking

    async with server, client:
        await server.transport.requests.serve(subject, foreign_server, concurrency=1)
        with pytest.raises(RemoteError) as caught:
            await client.request(subject, {"sku": "a"})
    assert (caught.value.type, caught.value.message, caught.value.code) == (
        "ServiceError",
        "inventory is closed",
        503,
    )


@pytest.mark.parametrize("content_type", PROTOBUF_CONTENT_TYPES)
async def test_protobuf_content_types_are_accepted(
    make_app: MakeApp, uid: str, content_type: str
) -> None:
    server, client = make_app(), make_app()

    @server.rpc(f"{uid}.reserve")
    async def reserve(order: shop_pb2.Order) -> shop_pb2.Reserved:
        return shop_pb2.Reserved(sku=order.sku, left=5 - order.quantity)

    body = shop_pb2.Order(sku="kettle", quantity=2).SerializeToString()
    async with server, client:
        reply = await raw_request(client, f"{uid}.reserve", body, content_type)
    assert h.ERROR_TYPE not in reply.headers, reply.headers.get(h.ERROR_MESSAGE)
    assert reply.content_type == PROTOBUF.content_type
    assert shop_pb2.Reserved.FromString(reply.body) == shop_pb2.Reserved(sku="kettle", left=3)


async def test_protobuf_request_without_content_type_is_answered_in_protobuf(
    make_app: MakeApp, uid: str
) -> None:
    server, client = make_app(), make_app()

    @server.rpc(f"{uid}.reserve")
    async def reserve(order: shop_pb2.Order) -> shop_pb2.Reserved:
        return shop_pb2.Reserved(sku=order.sku, left=1)

    body = shop_pb2.Order(sku="kettle").SerializeToString()
    async with server, client:
        reply = await raw_request(client, f"{uid}.reserve", body, content_type="")
    assert reply.content_type == PROTOBUF.content_type
    assert shop_pb2.Reserved.FromString(reply.body) == shop_pb2.Reserved(sku="kettle", left=1)
