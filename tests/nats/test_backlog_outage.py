"""A backlog read while the NATS server is away fails at once, not after the reconnect patience:
``pigeon status --watch`` and the gauges must not show the last numbers as live."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from pigeon import App, BrokerError
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_for
from tests.brokers.nats import NatsServer


@pytest.fixture
def server() -> Iterator[NatsServer]:
    """A server of this test alone, which it may stop."""
    server = NatsServer(name="backlog-outage")
    server.start()
    yield server
    server.remove()


async def test_a_backlog_read_during_an_outage_fails_at_once(server: NatsServer) -> None:
    app = App(server.url, reconnect_time_wait=0.2)
    async with app:
        await app.enqueue("outage.jobs", Job(1))

        async def one_ready() -> bool:  # the consumer's count follows the store, not at once
            return (await app.backlog("outage.jobs")).ready == 1

        await wait_for(one_ready, what="the job counted as ready")
        await asyncio.to_thread(server.stop)
        await wait_for(lambda: not app.transport.connected, what="the disconnect seen")
        started = time.monotonic()
        with pytest.raises(BrokerError, match="disconnected"):
            await app.backlog("outage.jobs")
        assert time.monotonic() - started < 1.0
