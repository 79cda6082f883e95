"""The NATS backends of the conformance suite (filled in by the NATS transport)."""

from __future__ import annotations

from collections.abc import Callable

from tests.backends import Backend

BACKENDS: dict[str, Callable[[], Backend]] = {}
