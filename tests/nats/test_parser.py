"""pigeon's NATS protocol parser makes the same calls as nats-py's, with the same arguments and
errors, on random protocol streams cut at random places (no server: the parser is pure),
control lines written as a server writes them and otherwise."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from nats.aio import client as nats_client
from nats.errors import ProtocolError
from nats.protocol.parser import Parser

from pigeon.transports.nats.client import TESTED_VERSIONS
from pigeon.transports.nats.parser import PigeonParser

STREAMS = 1500

pytestmark = pytest.mark.skipif(
    nats_client.__version__ not in TESTED_VERSIONS,
    reason="nats-py's own parser is used on this version",
)


class Recorder:
    """The client side of a parser: records each call it gets."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def _process_msg(self, *args: Any) -> None:
        self.calls.append(("msg", *args))

    async def _process_err(self, text: str) -> None:
        self.calls.append(("err", text))

    async def _process_ping(self) -> None:
        self.calls.append(("ping",))

    async def _process_pong(self) -> None:
        self.calls.append(("pong",))

    async def _process_info(self, info: dict[str, Any]) -> None:
        self.calls.append(("info", info))


def _message(rng: random.Random) -> bytes:
    line = _control_line(rng)
    if rng.random() < 0.2:  # not as a server writes it: other whitespace, odd numbers
        line = _bent(rng, line)
    return line


def _bent(rng: random.Random, message: bytes) -> bytes:
    """``message`` with one thing in its control line written otherwise: a separator, a number,
    the verb, or the line's end."""
    line, _, rest = message.partition(b"\r\n")
    fields = line.split(b" ")
    spaces = [b" "] * (len(fields) - 1) + [b""]
    kind = rng.randrange(4)
    if kind == 0:
        spaces[rng.randrange(len(fields) - 1)] = rng.choice(
            [b"  ", b"\t", b" \t", b"\r", b"\n", b"\x0b"]
        )
    elif kind == 1:
        at = rng.randrange(2, len(fields))
        fields[at] = rng.choice([b"+", b"0", b"1_", b"x", b"-"]) + fields[at]
    elif kind == 2:
        fields[0] = rng.choice([b"MSGX", b"HMS", b"HMSG", b"MSG", fields[0].lower()])
    else:
        spaces[-1] = rng.choice([b" ", b"\t"])
    bent = b"".join(itertools.chain.from_iterable(zip(fields, spaces, strict=True)))
    return bent + b"\r\n" + rest


def _control_line(rng: random.Random) -> bytes:
    subject = rng.choice([b"a", b"orders.created", b"_INBOX.x.y", b"s" * 300])
    sid = str(rng.randint(1, 10**6)).encode()
    reply = rng.choice([b"", b"_INBOX.abc.1 ", b"r "])
    payload = rng.randbytes(rng.choice([0, 1, 20, 70_000]))
    if rng.random() < 0.6:
        block = rng.choice([b"NATS/1.0\r\nNats-Msg-Id: 1\r\n\r\n", b"NATS/1.0 503\r\n\r\n"])
        size = len(block) + len(payload)
        return b"HMSG %s %s %s%d %d\r\n%s%s\r\n" % (
            subject,
            sid,
            reply,
            len(block),
            size,
            block,
            payload,
        )
    return b"MSG %s %s %s%d\r\n%s\r\n" % (subject, sid, reply, len(payload), payload)


def _op(rng: random.Random) -> bytes:
    other = [b"PING\r\n", b"PONG\r\n", b"+OK\r\n", b"-ERR 'Stale Connection'\r\n"]
    other.append(b'INFO {"server_id":"x","max_payload":1048576}\r\n')
    return _message(rng) if rng.random() < 0.7 else rng.choice(other)


def _stream(rng: random.Random) -> bytes:
    ops = [_op(rng) for _ in range(rng.randint(1, 8))]
    if rng.random() < 0.1:  # a line nats-py does not know, or a malformed message
        ops.insert(rng.randrange(len(ops) + 1), rng.choice([b"BOGUS 1\r\n", b"MSG a b c\r\n"]))
    return b"".join(ops)


def _cuts(rng: random.Random, data: bytes) -> list[bytes]:
    points = sorted(rng.sample(range(len(data) + 1), min(len(data) + 1, rng.randint(0, 6))))
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


async def _calls(parser_type: type[Parser], chunks: list[bytes]) -> list[Any]:
    recorder = Recorder()
    parser = parser_type(recorder)
    try:
        for chunk in chunks:
            await parser.parse(chunk)
    except ProtocolError as exc:
        recorder.calls.append(("raised", str(exc)))
    return [*recorder.calls, ("left", bytes(parser.buf), parser.state)]


async def test_the_same_calls_on_random_streams() -> None:
    rng = random.Random(18)
    for _ in range(STREAMS):
        chunks = _cuts(rng, _stream(rng))
        assert await _calls(PigeonParser, chunks) == await _calls(Parser, chunks), chunks


async def test_a_reset_during_a_message_ends_the_parse_of_the_old_buffer() -> None:
    class Resets(Recorder):
        async def _process_msg(self, *args: Any) -> None:
            await super()._process_msg(*args)
            parser.reset()  # as a reconnect does

    recorder = Resets()
    parser = PigeonParser(recorder)
    await parser.parse(b"MSG a 1 1\r\nx\r\nMSG a 1 1\r\ny\r\n")
    assert [call[4] for call in recorder.calls] == [b"x"]
    assert parser.buf == bytearray()
