"""pigeon's nats-py client subclass puts the same header bytes on the wire and builds the same
header dicts as nats-py itself, on random header sets (no server: the codec is pure)."""

from __future__ import annotations

import random
from typing import Any

import nats
import pytest
from nats.aio import client as nats_client
from nats.aio.client import Client

from pigeon.message import Envelope, new_envelope
from pigeon.transports.nats import wire
from pigeon.transports.nats.client import TESTED_VERSIONS, PigeonClient, new_client

SETS = 4000

pytestmark = pytest.mark.skipif(
    nats_client.__version__ not in TESTED_VERSIONS,
    reason="nats-py's own client is used on this version",
)

_NAME_CHARS = "abcXYZ019-_.!#$%&'*+^`|~ \t:é\x1c"
_VALUE_CHARS = "abc XYZ 019 \t\r\n:;=é€\x00\x1c\xa0\u2003"


def _text(rng: random.Random, chars: str, longest: int) -> str:
    return "".join(rng.choice(chars) for _ in range(rng.randint(0, longest)))


def _headers(rng: random.Random) -> dict[str, str]:
    names = ["Nats-Msg-Id", "content-type", "x-pigeon-deadline", "correlation_id", " padded "]
    return {
        rng.choice(names) if rng.random() < 0.4 else _text(rng, _NAME_CHARS, 12): _text(
            rng, _VALUE_CHARS, 20
        )
        for _ in range(rng.randint(0, 6))
    }


async def _sent(client: Any, headers: dict[str, str]) -> bytes | type[BaseException]:
    """The command ``client`` sends to publish with ``headers``, or the error it raises."""
    sent: list[bytes] = []

    async def capture(command: bytes, priority: bool = False) -> None:
        sent.append(command)

    client._send_command = capture
    try:
        await client._send_publish("a.b", "_INBOX.x", b"payload", 7, headers)
    except Exception as exc:
        return type(exc)
    return sent[0]


async def test_the_same_bytes_go_out() -> None:
    rng = random.Random(18)
    theirs, ours = Client(), new_client()
    assert isinstance(ours, PigeonClient)
    for _ in range(SETS):
        headers = _headers(rng)
        assert await _sent(ours, headers) == await _sent(theirs, headers), headers


def _raw_block(rng: random.Random) -> bytes:
    """A header block: one nats-py builds, or lines of random bytes, or a status line."""
    kind = rng.random()
    if kind < 0.15:  # a pigeon event's block, its values random (parsed by one match)
        values = [_text(rng, "abc019-_./+ :\t\xc3", 12).encode() for _ in range(2)]
        return b"NATS/1.0\r\nNats-Msg-Id: %s\r\ncontent-type: %s\r\n\r\n" % tuple(values)
    if kind < 0.5:
        try:
            return PigeonClient().header_block(_headers(rng))
        except nats.errors.BadHeaderError:
            return b"NATS/1.0\r\n\r\n"
    lines = [
        bytes(rng.choice(b"ab: \t\r\n\xc3\xa9\xff\x1c") for _ in range(rng.randint(0, 14)))
        for _ in range(rng.randint(0, 5))
    ]
    start = b"NATS/1.0 503\r\n" if kind > 0.9 else b"NATS/1.0\r\n"
    return start + b"\r\n".join(lines) + b"\r\n\r\n"


async def _parsed(client: Any, block: bytes) -> dict[str, str] | type[BaseException] | None:
    try:
        return await client._process_headers(block)  # type: ignore[no-any-return]
    except Exception as exc:  # nats-py fails on some status lines; both must fail alike
        return type(exc)


async def test_the_same_headers_come_in() -> None:
    rng = random.Random(18)
    theirs, ours = Client(), new_client()
    for _ in range(SETS):
        block = _raw_block(rng)
        assert await _parsed(ours, block) == await _parsed(theirs, block), block


def _envelope(rng: random.Random) -> Envelope:
    """An event envelope: mostly pigeon's own, some with odd ids, content types or headers."""
    envelope = new_envelope(b"{}", {}, rng.choice(["application/json", "application/x-protobuf"]))
    if rng.random() < 0.5:
        envelope.message_id = _text(rng, "abc019-_. \t\r\né€\x00", 12)
    if rng.random() < 0.3:
        envelope.content_type = _text(rng, "abc/+ \t\r\né", 10)
    if rng.random() < 0.2:
        envelope.correlation_id = rng.choice([envelope.message_id, "other"])
    if rng.random() < 0.1:
        envelope.headers = {"x-trace": "1"}
    return envelope


def test_an_events_header_block_is_the_one_its_headers_make() -> None:
    rng, client = random.Random(18), PigeonClient()
    built = 0
    for _ in range(SETS):
        envelope = _envelope(rng)
        block = wire.event_block(envelope)
        if block is not None:
            built += 1
            assert block == client.header_block(wire.outgoing(envelope)), envelope
    assert built > SETS // 3  # the fast path is taken for the usual event


async def test_a_message_is_built_as_nats_py_builds_it() -> None:
    client = PigeonClient()
    for block in (b"NATS/1.0\r\nNats-Msg-Id: 1\r\ncontent-type: a\r\n\r\n", None):
        ours = await client._built(7, b"a.b", b"_INBOX.x", b"data", block)
        parsed = await Client._process_headers(client, block)
        assert ours == client._build_message(7, b"a.b", b"_INBOX.x", b"data", parsed)
