"""Whatever bytes and headers arrive, a decoder raises ``DecodeError`` or returns a value."""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pigeon import DecodeError
from pigeon import headers as h
from pigeon.codecs import decoder_for
from pigeon.testing.conformance import shop_pb2
from pigeon.testing.conformance.models import Order

CONTENT_TYPES = st.sampled_from(
    [
        "",
        "application/json",
        "application/json; charset=utf-8",
        "application/x-protobuf",
        "text/plain",
        "application/octet-stream",
        "application/x-unknown",
    ]
) | st.text(max_size=30)
HEADERS = st.dictionaries(
    st.sampled_from([h.PROTOBUF_TYPE, h.ERROR_TYPE, "x", h.DEADLINE]) | st.text(max_size=10),
    st.sampled_from(["pigeon.test.Order", "pigeon.test.Reserved", "no.such.Type", ""])
    | st.text(max_size=20),
    max_size=4,
)
TARGETS: list[Any] = [
    Order,
    shop_pb2.Order,
    shop_pb2.Order | Order,
    dict,
    dict[str, Any],
    Any,
    list[int],
    str,
    bytes,
]
DECODERS = [decoder_for(target) for target in TARGETS]


@settings(max_examples=400, deadline=None)
@given(body=st.binary(max_size=200), content_type=CONTENT_TYPES, headers=HEADERS)
def test_decoders_raise_only_decode_error(
    body: bytes, content_type: str, headers: dict[str, str]
) -> None:
    for decode in DECODERS:
        with contextlib.suppress(DecodeError):
            decode(body, content_type, headers)


@settings(max_examples=200, deadline=None)
@given(
    order_id=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    sku=st.text(max_size=50),
    cut=st.integers(min_value=1, max_value=40),
)
def test_truncated_protobuf_never_yields_a_half_decoded_value(
    order_id: int, sku: str, cut: int
) -> None:
    whole = shop_pb2.Order(id=order_id, sku=sku, quantity=3).SerializeToString()
    truncated = whole[: max(0, len(whole) - cut)]
    decode = decoder_for(shop_pb2.Order)
    try:
        value = decode(truncated, "application/x-protobuf", {h.PROTOBUF_TYPE: "pigeon.test.Order"})
    except DecodeError:
        return
    # protobuf fields are independent: a cut exactly between fields parses as a prefix message
    assert value.SerializeToString() == truncated
