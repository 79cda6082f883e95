"""Fixtures of the Redis-specific tests: the session's URL and prefix, a raw redis-py client, and
servers of a test's own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from tests.brokers.redis import REDIS_SERVER, RedisServer, require, session_url


@pytest.fixture
def redis_url() -> str:
    """The session's URL, its key prefix included (``?prefix=``)."""
    return session_url()


@pytest.fixture
def prefix() -> str:
    """The session's key prefix: a raw client's keys for pigeon's queues start with it."""
    return require()[1]


@pytest.fixture
async def raw() -> AsyncIterator[Redis]:
    """A plain redis-py client of the session's server."""
    client = Redis.from_url(require()[0])
    yield client
    await client.aclose()


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A ``redis-server`` of this test alone (AOF on, ``appendfsync always``), which it may
    stop and start again."""
    if REDIS_SERVER is None:
        pytest.skip("no redis-server on PATH")
    server = RedisServer()
    server.start()
    yield server
    server.remove()
