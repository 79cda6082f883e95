"""Bodies typed as what they carry: a ``str`` sent (``text/plain``) reaches a handler or a caller
whose type pydantic reads from a string (an Enum of strings, a UUID, a date, a Literal) as the
JSON string it would be, and the constraints of an ``Annotated`` body type are checked.
"""

# no ``from __future__ import annotations``: the handlers below are annotated with the
# parametrized types, local names that only an evaluated annotation can see
import datetime
import enum
import logging
import uuid
from typing import Annotated, Any, Literal

import pytest
from pydantic import Field

from pigeon import RemoteError
from pigeon.testing.conformance.fixtures import MakeApp
from pigeon.testing.waiting import wait_for


class Color(enum.StrEnum):
    RED = "red"
    GREEN = "green"


ID = uuid.UUID("8d0c7c8e-3f4a-4b6e-9a51-0f2d3c4b5a69")

READ_FROM_A_STRING: dict[str, tuple[Any, Any, Any]] = {
    # case: (what the caller sends, the type both sides use, what the handler gets)
    "str enum, its value": ("green", Color, Color.GREEN),
    "str enum, a member": (Color.RED, Color, Color.RED),
    "uuid": (str(ID), uuid.UUID, ID),
    "date": ("2026-12-03", datetime.date, datetime.date(2026, 12, 3)),
    "literal": ("on", Literal["on", "off"], "on"),
    "int or str": ("7 dwarfs", int | str, "7 dwarfs"),
}


@pytest.mark.parametrize("case", sorted(READ_FROM_A_STRING))
async def test_a_str_reaches_handler_and_caller_whose_type_reads_a_string(
    make_app: MakeApp, uid: str, case: str
) -> None:
    sent, kind, expected = READ_FROM_A_STRING[case]
    server, client = make_app(), make_app()
    got: list[Any] = []

    @server.rpc(f"{uid}.echo")
    async def echo(body: kind) -> kind:  # type: ignore[valid-type]
        got.append(body)
        return body

    async with server, client:
        reply = await client.request(f"{uid}.echo", sent, reply=kind, timeout=10)
    assert got == [expected], got
    assert type(got[0]) is type(expected), got
    assert reply == expected, reply
    assert type(reply) is type(expected), reply


async def test_a_str_or_bytes_its_type_refuses_is_a_decode_error_saying_what_was_sent(
    make_app: MakeApp, uid: str
) -> None:
    server, client = make_app(), make_app()

    @server.rpc(f"{uid}.paint")
    async def paint(color: Color) -> str:
        return color.value

    async with server, client:
        errors = []
        for wrong in ("purple", b"red"):
            with pytest.raises(RemoteError) as caught:
                await client.request(f"{uid}.paint", wrong, reply=str, timeout=10)
            errors.append(caught.value)
        assert await client.request(f"{uid}.paint", "red", reply=str, timeout=10) == "red"
    assert [e.type for e in errors] == ["DecodeError", "DecodeError"]
    text, raw = (e.message for e in errors)
    assert "text/plain" in text, text
    assert "Color" in text, text
    assert "bytes sent" in raw, raw
    assert "Color" in raw, raw
    assert "unknown content type" not in raw, raw


Positive = Annotated[int, Field(gt=0)]
Sku = Annotated[str, Field(min_length=3, pattern=r"^[a-z]+$")]
Small = Annotated[bytes, Field(max_length=4)]


async def test_the_constraints_of_an_annotated_body_are_checked_for_rpc(
    make_app: MakeApp, uid: str
) -> None:
    server, client = make_app(), make_app()

    @server.rpc(f"{uid}.double")
    async def double(n: Positive) -> int:
        return n * 2

    @server.rpc(f"{uid}.sku")
    async def sku(code: Sku) -> str:
        return code.upper()

    @server.rpc(f"{uid}.blob")
    async def blob(data: Small) -> int:
        return len(data)

    async with server, client:
        assert await client.request(f"{uid}.double", 4, reply=int, timeout=10) == 8
        assert await client.request(f"{uid}.sku", "abc", reply=str, timeout=10) == "ABC"
        assert await client.request(f"{uid}.blob", b"\x00\xff", reply=int, timeout=10) == 2
        refused = ((".double", -1), (".sku", "ab"), (".sku", "AB1"), (".blob", b"12345"))
        for subject, bad in ((uid + name, body) for name, body in refused):
            with pytest.raises(RemoteError) as caught:
                await client.request(subject, bad, reply=Any, timeout=10)
            assert caught.value.type == "DecodeError", (bad, caught.value)


async def test_an_event_its_annotated_constraints_refuse_is_dropped_and_logged(
    make_app: MakeApp, uid: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    received: list[int] = []

    @app.subscribe(f"{uid}.counts")
    async def on_count(n: Positive) -> None:
        received.append(n)

    with caplog.at_level(logging.WARNING, logger="pigeon"):
        async with app:
            for n in (0, -5, 3):
                await app.publish(f"{uid}.counts", n)
            await wait_for(lambda: received == [3])
    dropped = [r for r in caplog.records if "undecodable" in r.getMessage()]
    assert len(dropped) == 2, [r.getMessage() for r in caplog.records]
