"""The fixtures the conformance suite's tests take: ``make_app`` and ``uid``.

They need a ``backend`` fixture from the project that runs the suite, returning a ``Backend``.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from pigeon.app import App
from pigeon.testing.clock import virtual_clock

MakeApp = Callable[..., App]
"""``make_app(**app_options) -> App`` on the backend under test."""


@dataclass(frozen=True)
class Features:
    """What a transport offers beyond the core semantics; a test of a feature a transport lacks
    is skipped, as in Watermill's universal Pub/Sub tests.

    ``durable``: durable subscriptions (``subscribe(durable=...)``) that keep events while closed.
    ``delivery_limit``: a job whose worker keeps dying is dead-lettered after the App's
    ``delivery_limit`` (the transport counts deliveries that ended unsettled).
    ``counts_returns``: the transport tells a delivery that ended unsettled from one handed back
    by ``Redeliver`` (``Delivery.returns`` is not ``None``; JetStream cannot).
    ``passive``: ``App(passive=True)`` declares nothing and names a missing queue (the memory
    broker has nothing to adopt: it ignores it).
    """

    durable: bool = True
    delivery_limit: bool = True
    counts_returns: bool = True
    passive: bool = True


@dataclass(frozen=True)
class Backend:
    """One transport under test: ``url()`` gives a URL an App of the test can use, ``options``
    the App keyword arguments it needs, ``features`` what it offers. ``virtual_clock``: run each
    test on the virtual clock of ``pigeon.testing.clock`` (in-process transports only: a broker's
    timers keep real time), so that its delays take no real time."""

    name: str
    url: Callable[[], str]
    options: dict[str, object] = field(default_factory=dict)
    features: Features = Features()
    virtual_clock: bool = False


def requires(backend: Backend, feature: str) -> None:
    """Skip the calling test unless ``backend`` offers ``feature`` (a ``Features`` field)."""
    if not getattr(backend.features, feature):
        pytest.skip(f"{backend.name} does not offer {feature}")


def known_gap(
    request: pytest.FixtureRequest, backend: Backend, gaps: dict[str, str], strict: bool = True
) -> None:
    """Expect the calling test to fail on the backends named in ``gaps`` (name -> why; a
    transport's name, ``rabbitmq``, covers its backends, ``rabbitmq-classic`` as well); the test
    still runs there, and passing would be reported (``strict``), so a gap closed elsewhere
    shows up. ``strict=False`` for a gap that shows in some runs only."""
    name = next((n for n in (backend.name, backend.name.split("-")[0]) if n in gaps), None)
    if name is not None:
        reason = f"known gap on {name}: {gaps[name]}"
        request.node.add_marker(pytest.mark.xfail(reason=reason, strict=strict))


@pytest.fixture
def uid() -> str:
    """A token unique to this test, for subjects, queues and durable names."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def make_app(backend: Backend, request: pytest.FixtureRequest) -> AsyncIterator[MakeApp]:
    """Build Apps on the backend under test; every App is closed at the end of the test.

    The test runs on the virtual clock if its backend asks for it and its module allows it
    (``VIRTUAL_CLOCK = True``: request deadlines are wall-clock times, so request-reply and
    pub-sub tests keep the real clock)."""
    apps: list[App] = []
    clock = contextlib.ExitStack()
    if backend.virtual_clock and getattr(request.module, "VIRTUAL_CLOCK", False):
        clock.enter_context(virtual_clock())

    def make(**kwargs: Any) -> App:
        options = {**backend.options, **kwargs}
        app = App(backend.url(), **options)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.shutdown_timeout = 0
        await app.close()
    clock.close()


RESOLUTION = 0.001
"""Seconds two readings of ``now`` may be off by (the virtual clock rounds its jumps)."""


def now() -> float:
    """The running loop's clock, in seconds: what the suite measures delays with, so that they
    read the same on the virtual clock as on the real one."""
    return asyncio.get_running_loop().time()


def cancel_own_task() -> None:
    """Cancel the task running the caller, as a handler may do to itself (not the App)."""
    task = asyncio.current_task()
    assert task is not None
    task.cancel()
