"""Reads and admin calls under way when a RabbitMQ App closes (``transports/sends.py``): the
close waits for them up to ``reconnect_patience``, then cuts them, each ending with a
``BrokerError`` saying the App closed and what to do. The conformance suite's
``sends_at_close`` covers those that end in time; these cover one the close must cut, and
``exists`` (not part of the seam)."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest

from pigeon import BrokerError
from pigeon.transports.rabbitmq.transport import RabbitMQTransport
from tests.conftest import MakeApp

LETTERS = 2000
"""Dead letters to read one ``basic.get`` at a time: about 1 s here (0.5 ms each, measured),
three times the close's patience below."""

PATIENCE = 0.3
"""The App's ``reconnect_patience`` (seconds): how long its close waits for a call, and each
``basic.get`` of the read for its answer (0.1 s was passed by one answer on a loaded CI box)."""


async def test_a_read_the_close_cannot_wait_for_fails_saying_the_app_closed(
    make_app: MakeApp, uid: str, raw: aio_pika.abc.AbstractConnection
) -> None:
    app, queue = make_app(reconnect_patience=PATIENCE), f"{uid}.jobs"
    await app.start()
    await app.enqueue(queue, 0)  # declares the queue and its dead-letter queue
    channel = await raw.channel()
    for start in range(0, LETTERS, 500):
        await asyncio.gather(
            *(
                channel.default_exchange.publish(aio_pika.Message(b"0"), f"{queue}.dlq")
                for _ in range(start, start + 500)
            )
        )
    reading = asyncio.create_task(app.dead_letters(queue))
    await asyncio.sleep(0)  # the read under way
    async with asyncio.timeout(5):
        await app.close()
    with pytest.raises(BrokerError, match="the App closed before the broker answered") as err:
        await reading
    assert "call it again once an App is running" in str(err.value)
    assert reading.cancelling() == 0  # the caller's task is not left cancelled
    await channel.queue_delete(queue)
    await channel.queue_delete(f"{queue}.dlq")


async def test_exists_under_way_at_close_ends_done_or_with_a_broker_error(
    make_app: MakeApp, uid: str
) -> None:
    app, queue = make_app(), f"{uid}.jobs"
    await app.start()
    transport = app.transport
    assert isinstance(transport, RabbitMQTransport)
    checks = [asyncio.create_task(transport.jobs.exists(queue)) for _ in range(100)]
    await asyncio.sleep(0)  # every check under way
    await app.close()
    async with asyncio.timeout(30):
        done, _ = await asyncio.wait(checks)
    odd = [t for t in done if t.cancelled() or not isinstance(t.exception(), BrokerError | None)]
    assert not odd, [repr(t.exception()) if not t.cancelled() else "cancelled" for t in odd[:3]]
    with pytest.raises(BrokerError, match="not connected"):
        await transport.jobs.exists(queue)
