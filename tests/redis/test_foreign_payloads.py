"""A foreign client's malformed payload, on any path pigeon reads from Redis, is one bad message:
handled as any undecodable one (an event or request logged and dropped, a job handled or
dead-lettered, a reply that matches no request logged and dropped), never the end of a reader,
and never the loss of the other entries read with it.

The payloads are sent with plain redis-py, as another program would send them. The metadata line
of pigeon's one-payload form (``MAGIC``, a line of JSON, the body) that does not have the types
pigeon writes makes the whole payload body (see ``wire.unpack``); odd fields of a job (a stream
entry any client writes) are read as RabbitMQ reads a foreign message's odd properties: the
entry's time for a timestamp that is no time, no earlier deliveries for a count that is no count.
"""

from __future__ import annotations

import json
import logging
import math
import time
from urllib.parse import quote

import pytest
from redis.asyncio import Redis

from pigeon import App, Message
from pigeon.testing.waiting import wait_for
from pigeon.transports.redis import wire
from pigeon.transports.redis.topology import Keys
from tests.brokers.redis import require

HOSTILE = {
    "headers as a list": b'{"h": [1]}',
    "headers as text": b'{"h": "x"}',
    "headers as a number": b'{"h": 5}',
    "a header value that is no text": b'{"h": {"a": 1}}',
    "a timestamp that is no number": b'{"ts": "abc"}',
    "an infinite timestamp": b'{"ts": Infinity}',
    "a timestamp not a number": b'{"ts": NaN}',
    "a boolean timestamp": b'{"ts": true}',
    "a correlation id that is no text": b'{"cid": [1]}',
    "a message id that is no text": b'{"id": 5}',
    "a content type that is no text": b'{"ct": {}}',
    "a reply address that is no text": b'{"rt": 1}',
    "metadata nested too deep to parse": b"[" * 10_000,
}
"""Metadata lines, by what is wrong with them."""

PAYLOADS = [wire.MAGIC + meta + b"\n{}" for meta in HOSTILE.values()]

BATCH = len(PAYLOADS) + 1
"""A subscriber's concurrency that reads the hostile entries and a good one in one read."""


def records(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "pigeon" and text in r.getMessage()]


def no_reader_failed(caplog: pytest.LogCaptureFixture) -> None:
    """No reader stalled on a failed read (``reading <stream> failed; retrying in 1s``)."""
    assert records(caplog, "failed; retrying") == []
    assert records(caplog, "failed, retrying") == []


@pytest.mark.parametrize("meta", list(HOSTILE.values()), ids=list(HOSTILE))
def test_metadata_of_the_wrong_types_makes_the_payload_all_body(meta: bytes) -> None:
    payload = wire.MAGIC + meta + b"\n{}"
    envelope = wire.unpack(payload)
    assert envelope.body == payload
    assert (envelope.headers, envelope.content_type) == ({}, "")
    assert (envelope.correlation_id, envelope.reply_to) == (None, None)
    assert isinstance(envelope.message_id, str)
    assert math.isfinite(envelope.timestamp)


def test_null_fields_are_absent_ones() -> None:
    meta = b'{"id": null, "ts": null, "ct": null, "cid": null, "rt": null, "h": null}'
    envelope = wire.unpack(wire.MAGIC + meta + b"\n{}")
    assert envelope.body == b"{}"
    assert (envelope.headers, envelope.content_type) == ({}, "")
    assert (envelope.correlation_id, envelope.reply_to) == (None, None)
    assert envelope.message_id
    assert abs(envelope.timestamp - time.time()) < 60


async def test_malformed_replies_on_the_inbox_are_logged_and_the_app_serves_on(
    prefix: str, raw: Redis, uid: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The issue's case: a bad payload on an App's reply channel stopped every reply and every
    plain subscription of the App, silently."""
    caplog.set_level(logging.DEBUG, "pigeon")
    own = f"{prefix}{uid}:"  # this App's channels alone, under the session's prefix
    app = App(f"{require()[0]}?prefix={quote(own)}")
    got: list[dict[str, int]] = []

    @app.subscribe(f"{uid}.ev")
    async def on_event(event: dict[str, int]) -> None:
        got.append(event)

    @app.rpc(f"{uid}.rpc")
    async def echo(request: dict[str, int]) -> dict[str, int]:
        return request

    async with app:
        assert await app.request(f"{uid}.rpc", {"a": 1}, timeout=5) == {"a": 1}
        [inbox] = await raw.pubsub_channels(f"{own}inbox:*")
        late = wire.MAGIC + b'{"cid": "nobody-waits"}\n{}'
        for payload in [*PAYLOADS, late]:
            assert await raw.publish(inbox, payload) == 1
        await app.publish(f"{uid}.ev", {"n": 1})
        await wait_for(lambda: got == [{"n": 1}], what="the event after the bad replies")
        assert await app.request(f"{uid}.rpc", {"a": 2}, timeout=5) == {"a": 2}
        assert app.transport.connected
    assert len(records(caplog, "dropped a reply that matches no request")) == len(PAYLOADS)
    assert len(records(caplog, "dropped a late reply")) == 1


async def test_malformed_events_are_dropped_and_plain_subscribers_read_on(
    redis_url: str, prefix: str, raw: Redis, uid: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "pigeon")
    app = App(redis_url)
    exact: list[dict[str, int]] = []
    wildcard: list[dict[str, int]] = []

    @app.subscribe(f"{uid}.ev")
    async def on_exact(event: dict[str, int]) -> None:
        exact.append(event)

    @app.subscribe(f"{uid}.*")
    async def on_wildcard(event: dict[str, int]) -> None:
        wildcard.append(event)

    async with app:
        for payload in PAYLOADS:
            assert await raw.publish(Keys(prefix).event_channel(f"{uid}.ev"), payload) == 2
        await app.publish(f"{uid}.ev", {"n": 1})
        await wait_for(lambda: exact == wildcard == [{"n": 1}], what="the good event")
        await app.publish(f"{uid}.ev", {"n": 2})
        await wait_for(lambda: exact == wildcard == [{"n": 1}, {"n": 2}], what="the next one")
    assert len(records(caplog, "dropped undecodable event")) == 2 * len(PAYLOADS)


@pytest.mark.parametrize("kind", ["group", "durable"])
async def test_malformed_stream_events_are_dropped_and_their_batch_handled(
    redis_url: str, prefix: str, raw: Redis, uid: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Bad entries and a good one, added at once, come in one read: the good one is handled
    and the reader does not stall."""
    caplog.set_level(logging.WARNING, "pigeon")
    app = App(redis_url)
    got: list[dict[str, int]] = []
    subject = f"{uid}.ev"
    options = {"group": "g"} if kind == "group" else {"durable": "d"}

    @app.subscribe(subject, concurrency=BATCH, **options)
    async def on_event(event: dict[str, int]) -> None:
        got.append(event)

    keys = Keys(prefix)
    stream = (
        keys.group_stream(subject, "g") if kind == "group" else keys.durable_stream("d", subject)
    )
    async with app:
        async with raw.pipeline(transaction=True) as pipe:
            for payload in PAYLOADS:
                pipe.xadd(stream, {"subject": subject, "message": payload})
            pipe.xadd(stream, {"subject": subject, "message": b'{"n": 1}'})
            await pipe.execute()
        await wait_for(lambda: got == [{"n": 1}], what="the good entry of the batch")
        await app.publish(subject, {"n": 2})
        await wait_for(lambda: got == [{"n": 1}, {"n": 2}], what="the next event")
        await wait_for(
            lambda: len(records(caplog, "dropped undecodable event")) == len(PAYLOADS),
            what="each bad entry logged",
        )
    no_reader_failed(caplog)


async def test_malformed_requests_are_dropped_and_their_batch_answered(
    redis_url: str, prefix: str, raw: Redis, uid: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "pigeon")
    app = App(redis_url)
    subject = f"{uid}.rpc"

    @app.rpc(subject, concurrency=BATCH)
    async def echo(request: dict[str, int]) -> dict[str, int]:
        return request

    reply_to = f"{prefix}{uid}:foreign-inbox"
    meta = {"id": "r1", "cid": "c1", "rt": reply_to, "ts": time.time()}
    good = wire.MAGIC + json.dumps(meta).encode() + b'\n{"a": 1}'
    replies = raw.pubsub()
    await replies.subscribe(reply_to)
    async with app:
        async with raw.pipeline(transaction=True) as pipe:
            for payload in [*PAYLOADS, good]:
                pipe.xadd(
                    Keys(prefix).request_stream(subject), {"subject": subject, "message": payload}
                )
            await pipe.execute()
        reply = None
        while reply is None or reply["type"] != "message":
            reply = await replies.get_message(timeout=10)
            assert reply is not None, "no reply to the good request of the batch"
        assert reply["data"].endswith(b'{"a":1}')
        assert b'"cid":"c1"' in reply["data"]
        assert await app.request(subject, {"a": 2}, timeout=5) == {"a": 2}
    await replies.aclose()
    assert len(records(caplog, "echo failed")) == len(PAYLOADS)
    no_reader_failed(caplog)


ODD_JOBS = [
    {"timestamp": b"abc"},
    {"timestamp": b"nan"},
    {"timestamp": b"inf"},
    {"timestamp": b"1e999"},
    {"timestamp": b""},
    {wire.DELIVERY: b"many"},
    {wire.DELIVERY: b"-5"},
    {wire.RETURNS: b"[1]"},
    {wire.RETURNS: b"-2"},
]
"""A foreign job's fields besides its body, each odd in one way."""


async def test_odd_job_fields_are_read_as_a_foreign_jobs(
    redis_url: str, prefix: str, raw: Redis, uid: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Each is handled once, first attempt, stamped with its entry's time, with the good jobs
    added with them; none is dead-lettered."""
    caplog.set_level(logging.WARNING, "pigeon")
    app = App(redis_url)
    queue = f"{uid}.jobs"
    got: dict[int, Message] = {}

    @app.worker(queue, concurrency=len(ODD_JOBS) + 1)
    async def work(job: dict[str, int], msg: Message) -> None:
        got[job["n"]] = msg

    async with app:
        async with raw.pipeline(transaction=True) as pipe:
            for n, odd in enumerate(ODD_JOBS):
                pipe.xadd(Keys(prefix).queue(queue), {"body": json.dumps({"n": n}), **odd})
            pipe.xadd(Keys(prefix).queue(queue), {"body": json.dumps({"n": len(ODD_JOBS)})})
            await pipe.execute()
        await wait_for(lambda: len(got) == len(ODD_JOBS) + 1, what="every job, odd ones too")
        assert await app.dead_letters(queue) == []
    for msg in got.values():
        assert msg.attempt == 1
        assert abs(msg.timestamp - time.time()) < 60
    no_reader_failed(caplog)


async def test_odd_dead_letters_can_be_read(
    redis_url: str, prefix: str, raw: Redis, uid: str
) -> None:
    app = App(redis_url)
    queue = f"{uid}.jobs"
    dead = Keys(prefix).dead_letters(queue)
    for n, odd in enumerate(ODD_JOBS):
        await raw.xadd(dead, {"body": json.dumps({"n": n}), **odd})
    async with app:
        letters = await app.dead_letters(queue)
    assert [json.loads(letter.body) for letter in letters] == [
        {"n": n} for n in range(len(ODD_JOBS))
    ]
    assert all(math.isfinite(letter.timestamp) for letter in letters)
