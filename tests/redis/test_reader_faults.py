"""No reader of the Redis transport ends, or stalls, on an unexpected error (a bug): the one
message it was at is logged (and, from a work queue, dead-lettered, as a poison message is), the
messages read with it are handled, and reading goes on.

The error is made where a bug would raise: a handler given to the transport seam that raises
instead of returning its coroutine, and a callback of the Pub/Sub connection that raises.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Any

import pytest
from redis.asyncio import Redis

from pigeon import App
from pigeon.testing.waiting import wait_for
from pigeon.transports.base import Delivery
from pigeon.transports.redis.channels import Channels
from pigeon.transports.redis.tasks import watched
from pigeon.transports.redis.topology import Keys
from tests.brokers.redis import require

BATCH = 3
"""Entries added at once, the first of which breaks its reader; read in one read."""


class Breaking:
    """A transport-level handler that raises for ``n == 0`` before making its coroutine, and
    records (and settles) every other ``n``."""

    def __init__(self) -> None:
        self.handled: list[int] = []

    def __call__(self, delivery: Delivery) -> Coroutine[Any, Any, None]:
        n = json.loads(delivery.envelope.body)["n"]
        if n == 0:
            raise RuntimeError("a bug in starting the handler")
        return self._handle(delivery, n)

    async def _handle(self, delivery: Delivery, n: int) -> None:
        self.handled.append(n)
        if (acking := delivery.ack()) is not None:
            await acking


def logged(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(1 for r in caplog.records if r.name == "pigeon" and text in r.getMessage())


async def add_at_once(raw: Redis, stream: str, entries: list[dict[str, Any]]) -> None:
    """Add ``entries`` to ``stream`` in one transaction: a blocked reader gets them together."""
    async with raw.pipeline(transaction=True) as pipe:
        for fields in entries:
            pipe.xadd(stream, fields)
        await pipe.execute()


@pytest.mark.parametrize("kind", ["group", "durable"])
async def test_a_stream_event_that_cannot_start_is_logged_and_its_batch_handled(
    redis_url: str,
    prefix: str,
    raw: Redis,
    uid: str,
    kind: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler, subject, keys = Breaking(), f"{uid}.ev", Keys(prefix)
    group, durable = ("g", None) if kind == "group" else (None, "d")
    stream = keys.group_stream(subject, "g") if group else keys.durable_stream("d", subject)
    async with App(redis_url) as app:
        await app.transport.events.subscribe(
            subject, handler, group=group, durable=durable, concurrency=BATCH
        )
        entries = [{"subject": subject, "message": json.dumps({"n": n})} for n in range(BATCH)]
        await add_at_once(raw, stream, entries)
        await wait_for(lambda: handler.handled == [1, 2], what="the rest of the batch")
        await app.publish(subject, {"n": 3})
        await wait_for(lambda: handler.handled == [1, 2, 3], what="the next event")
    assert logged(caplog, "could not start") == 1
    assert logged(caplog, "retrying in 1s") == 0
    if durable:  # settled, as a poison event is: not read again
        assert await raw.xpending(stream, "subscribers") == {
            "pending": 0,
            "min": None,
            "max": None,
            "consumers": [],
        }


async def test_a_job_that_cannot_start_is_dead_lettered_and_its_batch_handled(
    redis_url: str, prefix: str, raw: Redis, uid: str, caplog: pytest.LogCaptureFixture
) -> None:
    handler, queue = Breaking(), f"{uid}.jobs"
    async with App(redis_url) as app:
        await app.transport.jobs.consume(queue, handler, concurrency=BATCH)
        jobs = [{"body": json.dumps({"n": n}), "tenant": "acme"} for n in range(BATCH)]
        await add_at_once(raw, Keys(prefix).queue(queue), jobs)
        await wait_for(lambda: handler.handled == [1, 2], what="the rest of the batch")
        [letter] = await app.dead_letters(queue)
        await app.enqueue(queue, {"n": 3})
        await wait_for(lambda: handler.handled == [1, 2, 3], what="the next job")
    assert json.loads(letter.body) == {"n": 0}
    assert letter.headers["tenant"] == "acme"
    assert letter.failure is not None
    assert (letter.failure.type, letter.failure.message) == (
        "RuntimeError",
        "a bug in starting the handler",
    )
    assert logged(caplog, "could not start") == 1
    assert logged(caplog, "retrying in 1s") == 0


async def test_an_event_that_cannot_start_is_logged_and_the_subscriber_reads_on(
    redis_url: str, uid: str, caplog: pytest.LogCaptureFixture
) -> None:
    handler, subject = Breaking(), f"{uid}.ev"
    async with App(redis_url) as app:
        await app.transport.events.subscribe(
            subject, handler, group=None, durable=None, concurrency=1
        )
        for n in range(BATCH):
            await app.publish(subject, {"n": n})
        await wait_for(lambda: handler.handled == [1, 2], what="the events after the bad one")
    assert logged(caplog, f"dropped an event of {subject}") == 1


async def test_a_callback_that_raises_is_logged_and_the_connection_reads_on(
    prefix: str, raw: Redis, uid: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A callback of the one Pub/Sub connection that raises must not end the reading for the
    App's other subscriptions (its reply inbox among them)."""
    url = require()[0]
    client = Redis.from_url(url)
    channels = Channels(client, url)
    got: list[bytes] = []

    def breaks(channel: bytes, payload: bytes) -> None:
        raise RuntimeError("a bug in a callback")

    def keeps(channel: bytes, payload: bytes) -> None:
        got.append(payload)

    broken, kept = f"{prefix}{uid}:broken", f"{prefix}{uid}:kept"
    try:
        await channels.subscribe(broken, breaks)
        await channels.subscribe(kept, keeps)
        await channels.subscribe(kept, breaks)  # two on one channel: the first runs all the same
        await raw.publish(broken, b"1")
        await raw.publish(kept, b"2")
        await raw.publish(broken, b"3")
        await raw.publish(kept, b"4")
        await wait_for(lambda: got == [b"2", b"4"], what="the messages after the failing ones")
    finally:
        await channels.close()
        await client.aclose()
    assert logged(caplog, f"handing a message on {broken} failed") == 2
    assert logged(caplog, f"handing a message on {kept} failed") == 2


async def test_a_background_task_that_fails_is_logged_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def fails() -> None:
        raise RuntimeError("a bug in a loop")

    task = watched(fails(), "the test's loop")
    await asyncio.wait({task})
    await wait_for(lambda: logged(caplog, "the test's loop stopped on an error") == 1)
