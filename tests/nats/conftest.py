"""Fixtures of the NATS-specific tests: the session's server, and deleting what a test declared."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import pytest

from tests.backends import unavailable
from tests.brokers.nats import shared_url, stream_names, unavailable_reason


@pytest.fixture
def nats_url() -> str:
    """The session's NATS server (``PIGEON_TEST_NATS_URL`` or one the tests started)."""
    url = shared_url()
    if url is None:
        unavailable(unavailable_reason())
    return str(url)


@pytest.fixture
async def raw(nats_url: str, uid: str) -> AsyncIterator[nats.NATS]:
    """A raw nats-py connection; at the end, every stream whose name holds ``uid`` is deleted."""
    client = await nats.connect(nats_url)
    yield client
    manager = client.jetstream()
    for name in await stream_names(manager):
        if uid in name:
            await manager.delete_stream(name)
    await client.close()
