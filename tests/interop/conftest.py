"""Fixtures of the interop tests: the session's brokers, for clients pigeon did not write."""

from __future__ import annotations

import pytest

from tests.backends import unavailable
from tests.brokers import rabbitmq
from tests.brokers.nats import shared_url, unavailable_reason


@pytest.fixture
def nats_url() -> str:
    """The session's NATS server (``PIGEON_TEST_NATS_URL`` or one the tests started)."""
    url = shared_url()
    if url is None:
        unavailable(unavailable_reason())
    return str(url)


@pytest.fixture
def amqp_url() -> str:
    """The session's RabbitMQ URL (its own virtual host when ``rabbitmqctl`` works)."""
    return rabbitmq.require_url()
