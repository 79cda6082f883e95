"""Lookups remembered across messages give what the lookup gives: ``check_headers`` remembers the
header names that passed (the same errors whatever it saw before, past its clearing too), and
``codec_of`` tries a content type as pigeon names it first (the same codec as normalising it,
registered codecs and aliases included)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pigeon.codecs import registry
from pigeon.codecs.json import JSONCodec
from pigeon.transports import limits

NAMES = (
    st.sampled_from(["a", "A-b", "x" * 255, "x" * 256, "é", "a b", "", "a\n", "ok!#$%&'*+-.^_`|~"])
    | st.text(max_size=5)
    | st.integers(0, 2)
    | st.binary(max_size=2)
)
VALUES = st.sampled_from(["v", " v", "v\n", "\ud800", 1])


def _outcome(headers: Any) -> tuple[str, str] | None:
    try:
        limits.check_headers(headers, "u://x")
    except Exception as exc:
        return type(exc).__name__, str(exc)
    return None


def _cold(headers: Any) -> tuple[str, str] | None:
    limits._good_names.clear()
    return _outcome(headers)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.dictionaries(NAMES, VALUES, max_size=4), max_size=4))
def test_check_headers_decides_alike_with_names_remembered(many: list[Any]) -> None:
    for headers in many:
        cold = _cold(headers)
        assert _outcome(headers) == cold  # the names it let through now remembered


def test_a_bad_name_beside_remembered_ones_is_refused_past_the_clearing() -> None:
    for n in range(3000):  # the set is emptied at 1,024 names
        assert _outcome({f"h{n}": "v"}) is None
        assert _outcome({f"h{n}": "v", "h 1": "v"}) == _cold({"h 1": "v"})
        assert _outcome({f"h{n}": "v", "y" * 256: "v"}) == _cold({"y" * 256: "v"})


CONTENT_TYPES = st.sampled_from(
    [
        "",
        "application/json",
        "APPLICATION/JSON",
        "application/json; charset=utf-8",
        " application/json ",
        "application/x-protobuf",
        "application/protobuf",
        "Application/Protobuf",
        "application/vnd.google.protobuf;x=1",
        "text/plain",
        "application/x-mine",
        "Application/X-Mine",
        "application/x-mine;v=2",
        ";",
        " ",
    ]
) | st.text(max_size=6)


@pytest.fixture
def registered() -> Iterator[list[str]]:
    """Codecs registered under plain names, one with parameters, one under an alias of
    protobuf's; the registry as it was afterwards."""
    saved = dict(registry._CODECS)
    names = ["application/x-mine", "Application/X-Other; v=1", "application/protobuf"]
    for name in names:
        codec = JSONCodec()
        codec.content_type = name  # type: ignore[misc]
        registry.register_codec(codec)
    yield list(registry._CODECS)
    registry._CODECS.clear()
    registry._CODECS.update(saved)


def test_codec_of_is_the_codec_of_the_normalised_type(registered: list[str]) -> None:
    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(CONTENT_TYPES | st.sampled_from(registered))
    def check(content_type: str) -> None:
        normalised = registry._CODECS.get(registry.kind_of(content_type))
        assert registry.codec_of(content_type) is (normalised if content_type else registry.JSON)

    check()
