"""The transports the conformance suite runs on, and how each finds its broker.

A backend whose broker cannot be reached skips its tests locally and fails them when
``PIGEON_REQUIRE_BROKERS=1`` (as in CI).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable

import pytest

from pigeon.testing.conformance import Backend, Features


def unavailable(reason: str) -> None:
    """Skip the test, or fail it when brokers are required."""
    if os.environ.get("PIGEON_REQUIRE_BROKERS") == "1":
        pytest.fail(f"broker required but unavailable: {reason}")
    pytest.skip(reason)


def _memory_url_factory() -> Callable[[], str]:
    name = f"memory://test-{uuid.uuid4().hex[:12]}"
    return lambda: name


def backend_factories() -> dict[str, Callable[[], Backend]]:
    """name -> factory, called once per test; a broker backend calls ``unavailable`` if it must."""
    from tests.brokers import nats, rabbitmq, redis

    return {
        "memory": lambda: Backend(
            "memory",
            _memory_url_factory(),
            features=Features(passive=False),
            virtual_clock=True,
        ),
        **nats.BACKENDS,
        **rabbitmq.BACKENDS,
        **redis.BACKENDS,
    }
