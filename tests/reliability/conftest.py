"""Fixtures of the reliability tests: the brokers the scenarios of ``reliability`` run on.

NATS: a ``nats-server`` of the test alone (a scenario may kill it), or a three-node cluster.
RabbitMQ: the session's broker, in the session's own virtual host. A broker that cannot be had
skips the test (fails it under ``PIGEON_REQUIRE_BROKERS=1``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from reliability.targets import Cluster, Target, Unavailable, nats_cluster, nats_server
from reliability.targets import rabbitmq_broker as rabbitmq
from tests.backends import unavailable

BROKERS: dict[str, Callable[[], contextlib.AbstractAsyncContextManager[Target]]] = {
    "nats": nats_server,
    "rabbitmq": rabbitmq,
}


async def _enter(stack: contextlib.AsyncExitStack, context: Any) -> Any:
    try:
        return await stack.enter_async_context(context)
    except Unavailable as exc:
        unavailable(str(exc))


@pytest.fixture(params=sorted(BROKERS))
async def target(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    """Each scenario runs on NATS (JetStream) and on RabbitMQ (quorum queues)."""
    async with contextlib.AsyncExitStack() as stack:
        yield await _enter(stack, BROKERS[request.param]())


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    """Three NATS nodes of this test, JetStream ready; all stopped at the end."""
    async with contextlib.AsyncExitStack() as stack:
        yield await _enter(stack, nats_cluster())
