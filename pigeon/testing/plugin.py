"""pytest fixtures of the harness; enable them in a ``conftest.py``::

    pytest_plugins = ["pigeon.testing.plugin"]

    async def test_render(pigeon_harness):
        h = await pigeon_harness(app)          # started on a private broker, virtual clock
        await h.app.enqueue("invoices.render", job, delay=3600)
        await h.settled()

Tests that use them need pytest-asyncio (``asyncio_mode = "auto"`` or ``@pytest.mark.asyncio``);
do not also mark them ``@pytest.mark.looptime``: the harness turns the virtual clock on itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from pigeon.app import App
from pigeon.testing.harness import Harness

StartHarness = Callable[..., Awaitable[Harness]]
"""``await pigeon_harness(*apps, clock="virtual", timeout=None, max_message_size=None) ->
Harness`` (see ``Harness``)."""


@pytest.fixture
async def pigeon_harness() -> AsyncIterator[StartHarness]:
    """Start a ``Harness`` for the given Apps; it is closed at the end of the test."""
    started: list[Harness] = []

    async def start(*apps: App, **options: Any) -> Harness:
        harness = Harness(*apps, **options)
        await harness.__aenter__()
        started.append(harness)
        return harness

    yield start
    for harness in reversed(started):
        await harness.__aexit__(None, None, None)
