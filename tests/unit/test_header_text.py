"""Any text survives as a header value: ``encode_text`` makes it one that every transport
carries as it is (the shared header rule accepts it), ``decode_text`` gives it back."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pigeon import headers as h
from pigeon.transports.limits import check_headers


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=60))
def test_any_text_round_trips_through_a_safe_header_value(text: str) -> None:
    value = h.encode_text(text)
    check_headers({"x-text": value}, "memory://unit")
    assert h.decode_text(value) == text


def test_plain_text_stays_readable() -> None:
    assert h.encode_text("only 3 left: sku-1") == "only 3 left: sku-1"
    assert h.encode_text("a\nb") == "a%0Ab"
