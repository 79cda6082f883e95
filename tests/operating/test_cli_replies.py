"""``pigeon request`` prints every reply pigeon sends: text as text, Protobuf as its JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pigeon import App
from pigeon.testing.conformance import shop_pb2
from tests.conftest import BACKEND_FACTORIES
from tests.operating.test_cli_brokers import pigeon


@pytest.mark.parametrize(
    ("result", "printed"),
    [
        ("line one\nline two", "line one\nline two"),
        (shop_pb2.Order(id=7, sku="kettle"), '{"id": "7", "sku": "kettle"}'),
    ],
)
async def test_pigeon_request_prints_every_reply(
    uid: str, tmp_path: Path, result: Any, printed: str
) -> None:
    url = BACKEND_FACTORIES["nats"]().url()  # another process: a broker they share
    app = App(url)

    @app.rpc(f"{uid}.answer")
    async def answer(body: dict[str, Any]) -> Any:
        return result

    async with app:
        out = await pigeon("request", f"{uid}.answer", "{}", url=url, cwd=tmp_path)
    assert out.rstrip("\n") == printed or json.loads(out) == json.loads(printed)
