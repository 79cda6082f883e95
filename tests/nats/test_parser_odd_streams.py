"""pigeon's NATS protocol parser against nats-py's on odd streams (hypothesis): control lines with
every kind of whitespace and number a line can carry, other ops between them, cut anywhere, and a
reset from inside a callback; and a number too long for ``int`` is a protocol error, on which the
client reconnects, as nats-py's own does. (The usual streams: ``test_parser.py``.)"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.aio import client as nats_client
from nats.errors import ProtocolError
from nats.protocol.parser import Parser

from pigeon.transports.nats.client import TESTED_VERSIONS, new_client
from pigeon.transports.nats.parser import PigeonParser

pytestmark = pytest.mark.skipif(
    nats_client.__version__ not in TESTED_VERSIONS,
    reason="nats-py's own parser is used on this version",
)


class Recorder:
    """The client side of a parser: records each call; ``reset_on``: the kind of call after
    which it resets the parser, as a reconnect does."""

    def __init__(self, parser_type: type[Parser], reset_on: str | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.reset_on = reset_on
        self.parser = parser_type(self)

    def _record(self, kind: str, *args: Any) -> None:
        self.calls.append((kind, *args))
        if self.reset_on == kind:
            self.parser.reset()

    async def _process_msg(self, *args: Any) -> None:
        self._record("msg", *args)

    async def _process_err(self, text: str) -> None:
        self._record("err", text)

    async def _process_ping(self) -> None:
        self._record("ping")

    async def _process_pong(self) -> None:
        self._record("pong")

    async def _process_info(self, info: dict[str, Any]) -> None:
        self._record("info", info)


async def _calls(
    parser_type: type[Parser], chunks: list[bytes], reset_on: str | None = None
) -> list[Any]:
    recorder = Recorder(parser_type, reset_on)
    try:
        for chunk in chunks:
            await recorder.parser.parse(chunk)
    except ProtocolError as exc:
        recorder.calls.append(("raised", str(exc)))
    except Exception as exc:  # any other error is one nats-py's parser does not raise
        recorder.calls.append(("raised another", type(exc).__name__))
    parser = recorder.parser
    return [*recorder.calls, ("left", bytes(parser.buf), parser.state)]


SEPARATORS = st.sampled_from(
    [b" ", b" ", b" ", b"  ", b"\t", b"\r", b"\n", b"\r\n", b"\x0b", b"\x0c", b"\x1c", b" \t"]
)
NUMBERS = st.one_of(
    st.integers(0, 40).map(lambda n: str(n).encode()),
    st.sampled_from([b"0", b"00", b"007", b"+3", b"-1", b"1_0", b"x", b""]),
    st.sampled_from([b"\xd9\xa1", b"\xef\xbc\x91", b"\xa0"]),  # digits, not ASCII ones
)
WORDS = st.sampled_from([b"a", b"foo.bar", b"_INBOX.x.1", b"\xc3\xa9", b"\x00", b"12", b""])
VERBS = st.sampled_from([b"MSG", b"HMSG", b"MSG", b"HMSG", b"MSGX", b"HMS", b"msg", b"M", b"H"])
ENDINGS = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b" \r\n", b"\t\r\n", b"\n", b"\r", b""])
OTHER = st.sampled_from(
    [
        b"PING\r\n",
        b"PONG\r\n",
        b"+OK\r\n",
        b"-ERR 'Stale Connection'\r\n",
        b'INFO {"a":1}\r\n',
        b"PING \r\n",
        b"\r\n",
        b"BOGUS\r\n",
        b"P",
        b"\n",
    ]
)


@st.composite
def control_line(draw: st.DrawFn) -> bytes:
    """A message: its control line (fields, separators, ending all drawn), a payload, a CRLF."""
    verb = draw(VERBS)
    fields = [verb, draw(WORDS), draw(NUMBERS)]
    if draw(st.booleans()):  # a reply subject
        fields.append(draw(WORDS))
    if verb.startswith(b"H") or draw(st.booleans()):  # a header size
        fields.append(draw(NUMBERS))
    fields.append(draw(NUMBERS))
    if draw(st.booleans()):
        fields.append(draw(NUMBERS))  # one field too many
    line = fields[0] + b"".join(draw(SEPARATORS) + field for field in fields[1:])
    payload = draw(st.binary(max_size=12))
    return line + draw(ENDINGS) + payload + draw(st.sampled_from([b"\r\n", b"", b"\r"]))


@st.composite
def stream(draw: st.DrawFn) -> list[bytes]:
    """A few messages and other ops, cut at a few places."""
    data = b"".join(draw(st.lists(st.one_of(control_line(), OTHER), min_size=1, max_size=5)))
    points = sorted(draw(st.lists(st.integers(0, len(data)), max_size=5)))
    edges = [0, *points, len(data)]
    return [data[start:end] for start, end in itertools.pairwise(edges)]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(stream(), st.sampled_from([None, "msg", "err", "ping", "info"]))
def test_the_same_calls_on_odd_streams(chunks: list[bytes], reset_on: str | None) -> None:
    ours = asyncio.run(_calls(PigeonParser, chunks, reset_on))
    assert ours == asyncio.run(_calls(Parser, chunks, reset_on))


LONG = b"1" * 5000
"""More digits than Python's ``int`` takes from text (4,300 by default)."""


@pytest.mark.parametrize(
    "line",
    [
        b"MSG a " + LONG + b" 1\r\nx\r\n",
        b"MSG a 1 " + LONG + b"\r\nx\r\n",
        b"HMSG a 1 " + LONG + b" 5\r\nx\r\n",
    ],
    ids=["sid", "size", "header size"],
)
async def test_a_number_too_long_for_int_is_a_protocol_error(line: bytes) -> None:
    assert await _calls(PigeonParser, [line]) == await _calls(Parser, [line])
    assert (await _calls(PigeonParser, [line]))[0][0] == "raised"


@contextlib.asynccontextmanager
async def server_that_sends(line: bytes) -> AsyncIterator[str]:
    """A fake NATS server on a free loopback port: the handshake, then ``line`` after the first
    connection's first ``SUB``; yields its URL."""
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        info = b'{"server_id":"odd","version":"2.10.0","max_payload":1048576,"headers":true}'
        writer.write(b"INFO " + info + b"\r\n")
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while data := await reader.readline():
                if data.startswith(b"PING"):
                    writer.write(b"PONG\r\n")
                elif data.startswith(b"SUB") and len(writers) == 1:
                    writer.write(line)
                await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"nats://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for writer in writers:
            writer.close()


async def test_a_server_sending_a_number_too_long_for_int_is_disconnected_from() -> None:
    """The client reconnects, as nats-py's own does, instead of its reading task dying while it
    still says it is connected."""
    disconnected = asyncio.Event()

    async def on_disconnect() -> None:
        disconnected.set()

    async def on_error(exc: Exception) -> None:
        return None

    async with server_that_sends(b"MSG a " + LONG + b" 1\r\nx\r\n") as url:
        client = new_client()
        await client.connect(
            url, disconnected_cb=on_disconnect, error_cb=on_error, reconnect_time_wait=0.05
        )
        try:
            await client.subscribe("a")
            await asyncio.wait_for(disconnected.wait(), 5)
        finally:
            await client.close()
