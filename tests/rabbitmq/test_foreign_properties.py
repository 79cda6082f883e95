"""A foreign producer's message whose AMQP properties the client cannot decode as they stand
(timestamps in nanoseconds, negative, or past year 9999) is one message, not a connection error:
the App's other jobs keep flowing and the odd message is handled (or dead-lettered) like any other.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection

from pigeon import Message
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_for
from tests.conftest import MakeApp


class RawStamp(datetime):
    """A datetime that pamqp encodes as the integer ``raw``: how a foreign client's odd
    timestamp looks on the wire."""

    raw = 0

    def timestamp(self) -> float:
        return self.raw


def stamp(raw: int) -> RawStamp:
    value = RawStamp.now(UTC)
    value.raw = raw
    return value


NANOSECONDS = time.time_ns()
ODD = {"nanoseconds": NANOSECONDS, "negative": 2**64 - 86_400, "never": 2**63 - 1}


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
async def test_odd_timestamps_neither_kill_the_connection_nor_starve_jobs(
    make_app: MakeApp, uid: str, raw: AbstractConnection, queue_type: str
) -> None:
    app = make_app(queue_type=queue_type)
    handled: list[int] = []
    queue = f"{uid}.jobs"

    @app.worker(queue)
    async def work(job: Job) -> None:
        handled.append(job.n)

    async with app:
        channel = await raw.channel()
        for n, value in enumerate(ODD.values()):
            message = aio_pika.Message(
                f'{{"n": {n}}}'.encode(),
                content_type="application/json",
                timestamp=stamp(value),
                headers={"sent-at": stamp(value)},
            )
            await channel.default_exchange.publish(message, routing_key=queue)
        for n in range(len(ODD), len(ODD) + 20):
            await app.enqueue(queue, Job(n))
        await wait_for(lambda: len(handled) == len(ODD) + 20, what="every job, odd ones too")
        assert await app.dead_letters(queue) == []
    assert sorted(handled) == list(range(len(ODD) + 20))


async def test_a_nanosecond_timestamp_is_read_as_the_time_it_means(
    make_app: MakeApp, uid: str, raw: AbstractConnection
) -> None:
    app = make_app()
    stamps: list[float] = []

    @app.subscribe(f"{uid}.events")
    async def on_event(job: Job, msg: Message) -> None:
        stamps.append(msg.timestamp)

    async with app:
        channel = await raw.channel()
        exchange = await channel.get_exchange("pigeon.events")
        message = aio_pika.Message(b'{"n": 1}', timestamp=stamp(NANOSECONDS))
        await exchange.publish(message, routing_key=f"{uid}.events")
        await wait_for(lambda: len(stamps) == 1)
    assert stamps[0] == pytest.approx(NANOSECONDS / 1e9, abs=1)
