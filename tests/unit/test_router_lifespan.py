"""Routers' lifespans: carried into the App by ``include``, entered in order after the App's,
left in reverse after the handlers drained; what they yield lands on ``app.state``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Annotated

import pytest

from pigeon import App, ConfigurationError, Depends, Router
from pigeon.testing.waiting import wait_for


def tracing(events: list[str], name: str, router: Router) -> None:
    """Give ``router`` a lifespan that records entering and leaving in ``events``."""

    @router.lifespan
    async def lifespan(app: App) -> AsyncIterator[None]:
        events.append(f"enter {name}")
        try:
            yield
        finally:
            events.append(f"exit {name}")


async def test_the_app_enters_its_lifespan_then_its_routers_in_include_order(uid: str) -> None:
    events: list[str] = []
    app, outer, nested, last = App(f"memory://{uid}"), Router(), Router(prefix="n."), Router()
    for name, router in (("app", app), ("outer", outer), ("nested", nested), ("last", last)):
        tracing(events, name, router)
    release = asyncio.Event()

    @nested.worker("work")
    async def work(n: int) -> None:
        events.append("handler started")
        await release.wait()
        events.append("handler done")

    outer.include(nested)
    app.include(outer)
    app.include(last)
    await app.start()
    assert events == ["enter app", "enter outer", "enter nested", "enter last"]
    await app.enqueue("n.work", 1)
    await wait_for(lambda: "handler started" in events)
    closing = asyncio.create_task(app.close())
    await wait_for(lambda: not app.ready, what="close() draining")
    assert not any(event.startswith("exit") for event in events), "left after the drain"
    release.set()
    await closing
    assert events[4:] == [
        "handler started",
        "handler done",
        "exit last",
        "exit nested",
        "exit outer",
        "exit app",
    ]


@dataclass
class Ledger:
    charged: list[int] = field(default_factory=list)


ledgers = Router()


@ledgers.lifespan
async def open_ledger(app: App) -> AsyncIterator[dict[str, Ledger]]:
    yield {"ledger": Ledger()}


def ledger_of(app: App) -> Ledger:
    ledger: Ledger = app.state.ledger
    return ledger


@ledgers.subscribe("charge")
async def charge(n: int, ledger: Annotated[Ledger, Depends(ledger_of)]) -> None:
    ledger.charged.append(n)


async def test_one_router_serves_many_apps_each_with_the_state_its_lifespan_yielded(
    uid: str,
) -> None:
    apps = [App(f"memory://{uid}") for _ in range(3)]
    for app in apps:
        app.include(ledgers)
    async with contextlib.AsyncExitStack() as stack:
        for app in apps:
            await stack.enter_async_context(app)
        await apps[0].publish("charge", 7)
        await wait_for(lambda: all(app.state.ledger.charged == [7] for app in apps))
    assert len({id(app.state.ledger) for app in apps}) == 3, "a ledger per App"


async def test_a_router_lifespan_failing_fails_start_and_leaves_those_entered(uid: str) -> None:
    events: list[str] = []
    app, first, broken = App(f"memory://{uid}"), Router(), Router()
    tracing(events, "app", app)
    tracing(events, "first", first)

    @broken.lifespan
    async def fails(app: App) -> AsyncIterator[None]:
        raise OSError("database unreachable")
        yield

    @broken.subscribe("x")
    async def handler(n: int) -> None:
        events.append("handled")

    app.include(first)
    app.include(broken)
    with pytest.raises(OSError, match="database unreachable"):
        await app.start()
    assert events == ["enter app", "enter first", "exit first", "exit app"]
    assert not app.ready
    assert not app.transport.connected


@pytest.mark.parametrize(
    ("first", "second", "error"),
    [
        (None, 42, "yielded int: yield None, or a mapping of names"),
        ({"ledger": 1}, {"ledger": 2}, "provides app.state.ledger, which another router's"),
    ],
)
async def test_a_router_lifespan_yielding_what_cannot_go_on_app_state_fails_start(
    uid: str, first: object, second: object, error: str
) -> None:
    events: list[str] = []
    app, one, two = App(f"memory://{uid}"), Router(), Router()

    @one.lifespan
    async def yields_first(app: App) -> AsyncIterator[object]:
        try:
            yield first
        finally:
            events.append("exit one")

    @two.lifespan
    async def yields_second(app: App) -> AsyncIterator[object]:
        try:
            yield second
        finally:
            events.append("exit two")

    app.include(one)
    app.include(two)
    with pytest.raises(ConfigurationError, match=error):
        await app.start()
    assert events == ["exit two", "exit one"]


@dataclass(frozen=True)
class Settings:
    dsn: str = "postgres://db/shop"


async def test_router_names_cannot_go_on_a_frozen_state_the_apps_lifespan_yielded(
    uid: str,
) -> None:
    app, router = App(f"memory://{uid}"), Router()

    @app.lifespan
    async def settings(app: App) -> AsyncIterator[Settings]:
        yield Settings()

    @router.lifespan
    async def pool(app: App) -> AsyncIterator[dict[str, str]]:
        yield {"pool": "open"}

    app.include(router)
    with pytest.raises(ConfigurationError, match=r"cannot set app\.state\.pool on the Settings"):
        await app.start()
    assert not app.transport.connected


async def test_a_context_manager_factory_works_for_a_router(uid: str) -> None:
    router = Router()

    @contextlib.asynccontextmanager
    async def pool(app: App) -> AsyncIterator[dict[str, str]]:
        yield {"pool": "open"}

    router.lifespan(pool)
    app = App(f"memory://{uid}")
    app.include(router)
    async with app:
        assert app.state.pool == "open"


async def test_including_a_router_in_a_running_app_is_refused(uid: str) -> None:
    router = Router()
    tracing([], "late", router)
    app = App(f"memory://{uid}")
    async with app:
        with pytest.raises(ConfigurationError, match="include routers before the App starts"):
            app.include(router)


def test_one_lifespan_per_router() -> None:
    router = Router()
    tracing([], "first", router)
    with pytest.raises(ConfigurationError, match="this Router already has a lifespan"):
        tracing([], "second", router)


def test_a_lifespan_must_be_callable() -> None:
    not_a_function: Iterator[int] = iter([1])
    with pytest.raises(ConfigurationError, match="decorate an async generator function"):
        Router().lifespan(not_a_function)  # type: ignore[type-var]
