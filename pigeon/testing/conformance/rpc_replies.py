"""Replies at their edges: every reply pigeon sends, a pigeon caller decodes; a reply that cannot
be made or sent reaches the caller at once as ``RemoteError``, never as a timeout.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pigeon import DecodeError, RemoteError
from pigeon.testing.conformance import shop_pb2
from pigeon.testing.conformance.fixtures import Backend, MakeApp
from pigeon.testing.conformance.models import Order

AT_ONCE = 10.0
"""Seconds within which a failed reply must reach the caller: well before its 60 s timeout."""

BIG_REPLY_BYTES = 2 * 1024 * 1024
"""Over NATS' default ``max_payload`` (1 MiB) and the limits ``SMALL_LIMITS`` set."""

SMALL_LIMITS: dict[str, dict[str, object]] = {
    "memory": {"max_message_size": 1024 * 1024},
    "rabbitmq": {"max_message_size": 1024 * 1024},
    "redis": {"max_message_size": 1024 * 1024},
}
"""App options that give a transport a size limit under ``BIG_REPLY_BYTES`` (NATS has one)."""


async def _ask(make_app: MakeApp, uid: str, result: Any, reply: Any = Any, **options: Any) -> Any:
    """What a caller gets (value or exception) from an rpc handler that returns ``result``."""
    server, client = make_app(**options), make_app(**options)

    @server.rpc(f"{uid}.answer")
    async def answer(body: dict[str, Any]) -> Any:
        return result

    async with server, client:
        try:
            async with asyncio.timeout(AT_ONCE):
                return await client.request(f"{uid}.answer", {}, reply=reply, timeout=60)
        except Exception as exc:  # the outcome under test
            return exc


async def test_a_reply_the_codec_cannot_encode_is_a_remote_error_at_once(
    make_app: MakeApp, uid: str
) -> None:
    got = await _ask(make_app, uid, object())
    assert isinstance(got, RemoteError), got
    assert got.type == "EncodeError"
    assert "object" in got.message


async def test_a_reply_over_the_size_limit_is_a_remote_error_at_once(
    make_app: MakeApp, backend: Backend, uid: str
) -> None:
    big = b"x" * BIG_REPLY_BYTES
    options = SMALL_LIMITS.get(backend.name.split("-")[0], {})
    got = await _ask(make_app, uid, big, bytes, **options)
    if isinstance(got, bytes):  # a transport without a limit under it: it must arrive whole
        assert got == big
        return
    assert isinstance(got, RemoteError), repr(got)[:200]
    assert got.type == "MessageTooLarge"


PB_ORDER = shop_pb2.Order(id=7, sku="kettle", quantity=2)
PB_JSON = {"id": "7", "sku": "kettle", "quantity": 2}

REPLIES: dict[str, tuple[Any, Any, Any]] = {
    # case: (what the handler returns, what reply=Any gives, what reply=dict gives or None)
    "str": ("line one\nline two", "line one\nline two", None),
    "empty str": ("", "", None),
    "bytes": (b"\x00\xffraw", b"\x00\xffraw", None),
    "pydantic model": (Order(id=1), {"id": 1, "item": "widget"}, {"id": 1, "item": "widget"}),
    # a JSON request is answered in JSON: a protobuf result in its canonical JSON mapping
    "protobuf": (PB_ORDER, PB_JSON, PB_JSON),
    "dict": ({"a": [1, 2.5, None]}, {"a": [1, 2.5, None]}, {"a": [1, 2.5, None]}),
    "list": ([1, "two"], [1, "two"], None),
    "int": (42, 42, None),
    "none": (None, None, None),
}


@pytest.mark.parametrize("case", sorted(REPLIES))
async def test_every_reply_pigeon_sends_decodes_as_any(
    make_app: MakeApp, uid: str, case: str
) -> None:
    result, expected, _ = REPLIES[case]
    got = await _ask(make_app, uid, result)
    assert got == expected, repr(got)[:200]


@pytest.mark.parametrize("case", sorted(c for c, (_, _, d) in REPLIES.items() if d is not None))
async def test_every_reply_that_is_an_object_decodes_as_dict(
    make_app: MakeApp, uid: str, case: str
) -> None:
    result, _, expected = REPLIES[case]
    got = await _ask(make_app, uid, result, dict)
    assert got == expected, repr(got)[:200]


@pytest.mark.parametrize("result", ["text", {"id": "x"}, b"\xff"], ids=["str", "object", "bytes"])
async def test_a_reply_that_does_not_fit_reply_names_the_request_subject(
    make_app: MakeApp, uid: str, result: Any
) -> None:
    """A caller with many requests in flight must know which one's reply did not fit."""
    got = await _ask(make_app, uid, result, int)
    assert isinstance(got, DecodeError), got
    assert f"{uid}.answer" in str(got), str(got)
