"""The RabbitMQ backends of the conformance suite (filled in by the RabbitMQ transport)."""

from __future__ import annotations

from collections.abc import Callable

from tests.backends import Backend

BACKENDS: dict[str, Callable[[], Backend]] = {}
