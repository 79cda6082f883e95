"""Fixtures of the RabbitMQ-specific tests: the session's broker URL and a raw aio-pika client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aio_pika
import pytest

from tests.backends import Backend, unavailable
from tests.brokers import rabbitmq


@pytest.fixture(params=["rabbitmq"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """``make_app`` builds Apps on RabbitMQ (quorum work queues) in these tests."""
    return rabbitmq.BACKENDS[request.param]()


@pytest.fixture
def amqp_url() -> str:
    """The session's URL (its own virtual host when ``rabbitmqctl`` works)."""
    return rabbitmq.require_url()


@pytest.fixture
async def raw(amqp_url: str) -> AsyncIterator[aio_pika.abc.AbstractConnection]:
    """A plain aio-pika connection, as any other RabbitMQ client would use."""
    connection = await aio_pika.connect(amqp_url)
    yield connection
    await connection.close()


@pytest.fixture
def drop_connections(amqp_url: str) -> Callable[[], Awaitable[None]]:
    """``await drop_connections()``: ``rabbitmqctl close_all_connections`` on the tests' vhost."""
    _, vhost = rabbitmq.session_url()

    async def drop() -> None:
        try:
            await asyncio.to_thread(
                rabbitmq.rabbitmqctl, "close_all_connections", "--vhost", vhost, "pigeon test"
            )
        except OSError as exc:
            unavailable(f"rabbitmqctl is not available: {exc}")

    return drop
