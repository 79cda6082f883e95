"""The lifespan: entered before handlers start, left after they drained; its failure fails start."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from pigeon import App, ConfigurationError
from pigeon.testing.waiting import wait_for


@dataclass
class Stock:
    items: dict[str, int] = field(default_factory=lambda: {"widget": 3})
    closed: bool = False


async def test_lifespan_wraps_the_handlers_and_its_value_reaches_them(uid: str) -> None:
    app = App(f"memory://{uid}", shutdown_timeout=5)
    events: list[str] = []
    release = asyncio.Event()

    @app.lifespan
    async def resources(app: App) -> AsyncIterator[Stock]:
        events.append("enter")
        stock = Stock()
        yield stock
        stock.closed = True
        events.append("exit")

    @app.worker("take")
    async def take(sku: str) -> None:
        events.append("handler started")
        await release.wait()
        app.state.items[sku] -= 1
        events.append("handler done")

    await app.start()
    assert events == ["enter"]
    assert isinstance(app.state, Stock)
    await app.enqueue("take", "widget")
    await wait_for(lambda: "handler started" in events)
    closing = asyncio.create_task(app.close())
    await wait_for(lambda: not app.ready, what="close() draining")
    assert "exit" not in events, "the lifespan is left only after handlers drained"
    release.set()
    await closing
    assert events == ["enter", "handler started", "handler done", "exit"]
    assert app.state.items == {"widget": 2}
    assert app.state.closed


async def test_a_context_manager_factory_works_and_may_set_state(uid: str) -> None:
    app = App(f"memory://{uid}")

    @app.lifespan
    @contextlib.asynccontextmanager
    async def resources(app: App) -> AsyncIterator[None]:
        app.state.pool = "open"
        yield
        app.state.pool = "closed"

    async with app:
        assert app.state.pool == "open"
    assert app.state.pool == "closed"


async def test_a_failing_lifespan_fails_start_with_its_error(uid: str) -> None:
    app = App(f"memory://{uid}")
    started: list[str] = []

    @app.lifespan
    async def resources(app: App) -> AsyncIterator[None]:
        raise OSError("database unreachable")
        yield

    @app.subscribe("x")
    async def handler(n: int) -> None:
        started.append("x")

    with pytest.raises(OSError, match="database unreachable"):
        await app.start()
    assert not app.ready
    assert not app.transport.connected
    assert started == []


def test_one_lifespan_per_app() -> None:
    app = App("memory://unit")

    @app.lifespan
    async def first(app: App) -> AsyncIterator[None]:
        yield

    with pytest.raises(ConfigurationError, match="already has a lifespan"):

        @app.lifespan
        async def second(app: App) -> AsyncIterator[None]:
            yield
