"""Whatever an rpc handler returns that pigeon can encode, a pigeon caller decodes with
``reply=Any`` (and ``reply=dict`` when it is an object); any other reply type gives the value or
``DecodeError``, nothing else. Through a memory App, both for a JSON and a Protobuf request (a
reply mirrors the request's codec)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pigeon import JSON, App, DecodeError
from pigeon.codecs.protobuf import to_dict
from pigeon.testing.conformance import shop_pb2
from pigeon.testing.conformance.models import Order, Reserved

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
RESULTS = (
    st.text(max_size=50)
    | st.binary(max_size=50)
    | JSON_VALUES
    | st.builds(
        Order, id=st.integers(min_value=-(2**31), max_value=2**31), item=st.text(max_size=20)
    )
    | st.builds(
        shop_pb2.Order,
        id=st.integers(min_value=-(2**63), max_value=2**63 - 1),
        sku=st.text(max_size=20),
        quantity=st.integers(min_value=-(2**31), max_value=2**31 - 1),
    )
)
REPLY_TYPES: list[Any] = [Any, dict, str, bytes, Order, shop_pb2.Order, list[Any], int, Reserved]
REQUESTS = st.sampled_from([{}, shop_pb2.Reserved(sku="s", left=1)])
"""A JSON request and a Protobuf one: the reply mirrors the request's codec where it can."""


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[asyncio.Runner, App, list[Any]]]:
    """A memory App serving ``answer``, which returns ``result[0]``, on a loop kept across
    examples."""
    app = App(f"memory://props-{uuid.uuid4().hex[:8]}")
    result: list[Any] = [None]

    @app.rpc("answer")
    async def answer(body: Any) -> Any:
        return result[0]

    with asyncio.Runner() as runner:
        runner.run(app.start())
        yield runner, app, result
        runner.run(app.close())


def _expected_any(value: Any, request: Any) -> Any:
    if isinstance(value, str | bytes):
        return value
    if isinstance(value, shop_pb2.Order) and not isinstance(request, dict):
        return value  # a Protobuf request is answered in Protobuf: the message itself
    return json.loads(JSON.encode(value))


@settings(max_examples=150, deadline=None)
@given(value=RESULTS, request=REQUESTS)
def test_every_reply_decodes_as_any_and_as_dict_when_an_object(
    served: tuple[asyncio.Runner, App, list[Any]], value: Any, request: Any
) -> None:
    runner, app, result = served
    result[0] = value
    ask = lambda reply: app.request("answer", request, reply=reply, timeout=5)  # noqa: E731
    assert runner.run(ask(Any)) == _expected_any(value, request)
    is_object = isinstance(value, dict | Order | shop_pb2.Order)
    if is_object:
        expected = _expected_any(value, request)
        as_dict = to_dict(expected) if isinstance(expected, shop_pb2.Order) else expected
        assert runner.run(ask(dict)) == as_dict
    for reply in REPLY_TYPES:
        try:
            runner.run(ask(reply))
        except DecodeError:
            assert reply is not Any
            assert not (reply is dict and is_object)
