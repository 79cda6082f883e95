"""pigeon's nats-py client subclass puts the same header bytes on the wire and builds the same
header dicts as nats-py itself, on random header sets (no server: the codec is pure)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import nats
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.aio import client as nats_client
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

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
    if kind < 0.2:  # pigeon's usual block, some lines left out, its values random (one match)
        names = (b"x-pigeon-deadline", b"Nats-Msg-Id", b"content-type")
        lines = [
            b"%s: %s\r\n" % (name, _text(rng, "abc019-_./+ :\t\xc3", 12).encode())
            for name in names
            if name == b"content-type" or rng.random() < 0.6
        ]
        return b"NATS/1.0\r\n" + b"".join(lines) + b"\r\n"
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
        if block.startswith(STATUS_LINE):
            await _check_status_block(ours, block)
            continue
        ours_parsed, theirs_parsed = await _parsed(ours, block), await _parsed(theirs, block)
        assert ours_parsed == theirs_parsed, block
        if isinstance(ours_parsed, dict) and isinstance(theirs_parsed, dict):
            assert list(ours_parsed) == list(theirs_parsed), block  # in the same order


STATUS_LINE = b"NATS/1.0 "
"""A block that starts with a status line: read as text (``HeaderCodec.parse_status``), where
nats-py names the description with an ``Enum`` and, with headers but no description, makes
one of the header lines."""


async def _check_status_block(client: Any, block: bytes) -> None:
    """``block``'s status line is ``Status`` and ``Description``, then its headers are those
    the same block without the status line gives."""
    line, _, rest = block.partition(b"\r\n")
    code, _, description = line[len(STATUS_LINE) :].strip().partition(b" ")
    expected = {"Status": code.decode()}
    if description.strip():
        expected["Description"] = description.strip().decode()
    expected.update(await _parsed(client, b"NATS/1.0\r\n" + rest) or {})  # type: ignore[arg-type]
    parsed = await _parsed(client, block)
    assert parsed == expected, block
    assert isinstance(parsed, dict)
    assert all(type(name) is str and type(value) is str for name, value in parsed.items())


def _envelope(rng: random.Random) -> Envelope:
    """An event envelope: mostly pigeon's own, some with odd ids, content types or headers."""
    envelope = new_envelope(b"{}", {}, rng.choice(["application/json", "application/x-protobuf"]))
    if rng.random() < 0.5:
        envelope.message_id = _text(rng, "abc019-_. \t\r\né€\x00", 12)
    if rng.random() < 0.3:
        envelope.content_type = _text(rng, "abc/+ \t\r\né", 10)
    if rng.random() < 0.2:
        envelope.correlation_id = rng.choice([envelope.message_id, "other"])
    kind = rng.random()
    if kind < 0.1:
        envelope.headers = {"x-trace": "1"}
    elif kind < 0.4:  # a request
        envelope.headers = {"x-pigeon-deadline": _text(rng, "0123456789. \t\r", 18)}
        if kind < 0.15:
            envelope.headers["x-trace"] = "1"
    return envelope


@pytest.mark.parametrize("reply", [False, True])
def test_a_header_block_built_directly_is_the_one_its_headers_make(reply: bool) -> None:
    rng, client = random.Random(18), PigeonClient()
    built = 0
    for _ in range(SETS):
        envelope = _envelope(rng)
        block = wire.plain_block(envelope, reply=reply)
        if block is not None:
            built += 1
            assert block == client.header_block(wire.outgoing(envelope, reply=reply)), envelope
    assert built > SETS // 4  # the fast path is taken for the usual event, request or reply


class Taking:
    """A taker (``PigeonClient.take_directly``) that keeps what it is handed."""

    def __init__(self) -> None:
        self.taken: list[Msg] = []

    def ready(self) -> bool:
        return True

    def take(self, msg: Msg) -> None:
        self.taken.append(msg)


BLOCKS = (b"NATS/1.0\r\nNats-Msg-Id: 1\r\ncontent-type: a\r\n\r\n", None, b"NATS/1.0 503\r\n\r\n")


async def test_a_message_taken_directly_is_the_one_nats_py_builds() -> None:
    """``PigeonClient._process_msg`` builds a taken message inline: nats-py's ``Msg``, counted
    as nats-py counts a message it hands on."""
    client, taker = PigeonClient(), Taking()
    subscription = client._subs[7] = Subscription(client, 7, "a.b")
    client.take_directly(subscription, taker)
    for block in BLOCKS:
        await client._process_msg(7, b"a.b", b"_INBOX.x", b"data", block)
        parsed = await Client._process_headers(client, block)
        assert taker.taken.pop() == client._build_message(7, b"a.b", b"_INBOX.x", b"data", parsed)
    assert subscription._received == len(BLOCKS)
    assert (client.stats["in_msgs"], client.stats["in_bytes"]) == (len(BLOCKS), 4 * len(BLOCKS))


class Failing(Taking):
    def take(self, msg: Msg) -> None:
        raise RuntimeError("taker broke")


@pytest.mark.parametrize("block", BLOCKS)
async def test_a_failing_taker_is_reported_to_the_error_callback(block: bytes | None) -> None:
    """As nats-py reports a failing callback: the error to ``error_cb``, the reading goes on."""
    client, reported = PigeonClient(), asyncio.Queue[Exception]()

    async def on_error(exc: Exception) -> None:
        reported.put_nowait(exc)

    client._error_cb = on_error
    subscription = client._subs[7] = Subscription(client, 7, "a.b")
    client.take_directly(subscription, Failing())
    await client._process_msg(7, b"a.b", b"", b"data", block)
    async with asyncio.timeout(5):
        assert str(await reported.get()) == "taker broke"
    assert subscription._received == 1


async def test_a_reply_is_the_message_nats_py_builds() -> None:
    client = PigeonClient()
    client._replies_sid, client._resp_sub_prefix = 9, bytearray(b"_INBOX.p.")
    client._subs[9] = Subscription(client, 9, "_INBOX.p.*")
    loop = asyncio.get_running_loop()
    for block in BLOCKS:
        future = client._resp_map["t"] = loop.create_future()
        await client._process_msg(9, b"_INBOX.p.t", b"", b"data", block)
        parsed = await Client._process_headers(client, block)
        assert future.result() == client._build_message(9, b"_INBOX.p.t", b"", b"data", parsed)


HEADER_LINES = st.sampled_from(
    [
        b"NATS/1.0\r\n",
        b"NATS/1.0 503\r\n",
        b"NATS/1.0 404 No Messages\r\n",
        b"a: b\r\n",
        b"A: b\r\n",
        b"a:b\r\n",
        b"a:  b \r\n",
        b"a: \r\n",
        b"a\r\n",
        b": x\r\n",
        b"Nats-Msg-Id: 1\r\n",
        b"content-type: application/json\r\n",
        b"x y: z\r\n",
        b"\r\n",
        b"\xff: \xfe\r\n",
        b"a: \xc3\xa9\r\n",
        b"a: b:c\r\n",
        b" a: b\r\n",
    ]
)


def _fields(msg: Msg) -> tuple[Any, ...]:
    return (msg.subject, msg.reply, msg.data, msg.headers, msg._sid, msg._metadata, msg._ackd)


async def _taken_and_queued(block: bytes | None) -> tuple[Any, Any]:
    """What a taker gets from a ``PigeonClient`` and what nats-py's own client queues for the
    same message: the messages' fields, the errors reported, the stats."""
    outcomes = []
    for client in (PigeonClient(), Client()):
        errors: list[str] = []

        async def on_error(exc: Exception, errors: list[str] = errors) -> None:
            errors.append(type(exc).__name__)

        client._error_cb = on_error
        subscription = client._subs[7] = Subscription(client, 7, "a.b")
        taker = Taking()
        if isinstance(client, PigeonClient):
            client.take_directly(subscription, taker)
        try:
            await client._process_msg(7, b"a.b", b"r", b"data", block)
        except Exception as exc:
            errors.append(f"raised {type(exc).__name__}")
        queue = subscription._pending_queue
        msgs = taker.taken + [queue.get_nowait() for _ in range(queue.qsize())]
        outcomes.append(([_fields(m) for m in msgs], errors, client.stats, subscription._received))
    return outcomes[0], outcomes[1]


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.none() | st.lists(HEADER_LINES, max_size=6).map(b"".join))
def test_a_message_taken_directly_is_the_one_nats_py_queues_on_any_block(
    block: bytes | None,
) -> None:
    ours, theirs = asyncio.run(_taken_and_queued(block))
    if block is not None and block.startswith(STATUS_LINE):  # read as text: see STATUS_LINE
        if theirs[1]:  # nats-py failed on it (a name not ASCII): pigeon skips that name
            assert (len(ours[0]), ours[1]) == (1, [])
            return
        ours, theirs = _without_headers(ours), _without_headers(theirs)
    assert ours == theirs


def _without_headers(outcome: Any) -> Any:
    """``outcome`` with its messages' headers left out."""
    fields, *rest = outcome
    return ([(*f[:3], *f[4:]) for f in fields], *rest)


async def test_a_reply_read_after_drain_is_counted_as_nats_py_counts_it() -> None:
    """The inbox subscription left ``_subs`` (drain unsubscribed it): nats-py counts every
    message it reads all the same."""
    ours, theirs = PigeonClient(), Client()
    ours._replies_sid, ours._resp_sub_prefix = 9, bytearray(b"_INBOX.p.")
    await ours._process_msg(9, b"_INBOX.p.t", b"", b"data", None)
    await Client._process_msg(theirs, 9, b"_INBOX.p.t", b"", b"data", None)
    assert ours.stats == theirs.stats
