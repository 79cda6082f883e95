"""``pigeon docs`` writes an AsyncAPI 3.0 document that validates against the official schema."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pigeon import App
from pigeon.asyncapi import asyncapi_document
from pigeon.testing.conformance import shop_pb2
from pigeon.testing.conformance.models import Order, Reserve, Reserved

SCHEMA = json.loads((Path(__file__).parents[1] / "data/asyncapi-3.0.0.schema.json").read_text())


def shop() -> App:
    app = App("memory://user:secret@shop")

    @app.subscribe("orders.*", group="billing")
    async def bill(order: Order) -> None:
        """Charge the customer for an order."""

    @app.rpc("inventory.reserve")
    async def reserve(req: Reserve) -> Reserved:
        return Reserved(sku=req.sku, left=0)

    @app.rpc("inventory.pb")
    async def reserve_pb(order: shop_pb2.Order) -> shop_pb2.Reserved:
        return shop_pb2.Reserved()

    @app.worker("invoices.render")
    async def render(job: dict[str, int]) -> None: ...

    return app


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return asyncapi_document(shop(), title="shop")


def test_document_validates_against_asyncapi_3(document: dict[str, Any]) -> None:
    jsonschema.validate(document, SCHEMA)


def test_every_handler_is_an_operation_on_its_channel(document: dict[str, Any]) -> None:
    addresses = {c["address"] for c in document["channels"].values()}
    assert {"orders.*", "inventory.reserve", "inventory.pb", "invoices.render"} <= addresses
    assert len(document["operations"]) == 4
    assert all(op["action"] == "receive" for op in document["operations"].values())
    bill = document["operations"]["subscribe.orders.star"]
    assert bill["summary"] == "Charge the customer for an order."


def test_rpc_operations_describe_their_reply(document: dict[str, Any]) -> None:
    reply = document["operations"]["rpc.inventory.reserve"]["reply"]
    reply_messages = [m["$ref"].rsplit("/", 1)[-1] for m in reply["messages"]]
    assert reply_messages == ["Reserved"]
    reserved = document["components"]["messages"]["Reserved"]["payload"]
    assert reserved["properties"]["left"]["type"] == "integer"


def test_protobuf_messages_are_named(document: dict[str, Any]) -> None:
    message = document["components"]["messages"]["pigeon.test.Order"]
    assert message["contentType"] == "application/x-protobuf"
    assert message["name"] == "pigeon.test.Order"


def test_password_is_not_in_the_document(document: dict[str, Any]) -> None:
    assert "secret" not in json.dumps(document)


def test_pigeon_docs_writes_the_document(tmp_path: Path) -> None:
    (tmp_path / "svc.py").write_text(
        textwrap.dedent(
            """
            from pydantic import BaseModel
            from pigeon import App

            class Ping(BaseModel):
                n: int

            app = App()

            @app.rpc("ping")
            async def ping(body: Ping) -> Ping:
                return body
            """
        )
    )
    out = tmp_path / "asyncapi.json"
    result = subprocess.run(
        [sys.executable, "-m", "pigeon", "docs", "svc:app", "--output", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    written = json.loads(out.read_text())
    jsonschema.validate(written, SCHEMA)
    assert written["channels"]["ping"]["address"] == "ping"


def test_the_schema_check_catches_a_broken_document(document: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(document))
    next(iter(broken["operations"].values()))["action"] = "listen"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)
