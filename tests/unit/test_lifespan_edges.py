"""Lifespan edges found by a tester's trial (issue 15): refused when declared or included rather
than at start, what may go on ``app.state`` and when it is reset, and a stop while starting."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from pigeon import App, ConfigurationError, Router
from pigeon.testing.waiting import wait_for


def with_lifespan(events: list[str], name: str) -> Router:
    router = Router()

    @router.lifespan
    async def lifespan(app: App) -> AsyncIterator[None]:
        events.append(f"enter {name}")
        yield

    return router


def test_a_router_included_twice_is_refused_at_include() -> None:
    router = with_lifespan([], "one")
    parent = Router()
    parent.include(router)
    app = App("memory://")
    app.include(router)
    with pytest.raises(ConfigurationError, match="included twice"):
        app.include(parent)


async def test_a_router_lifespan_cannot_overwrite_what_the_apps_lifespan_set(uid: str) -> None:
    app, router = App(f"memory://{uid}"), Router()

    @app.lifespan
    async def own(app: App) -> AsyncIterator[None]:
        app.state.pool = "the app's"
        yield

    @router.lifespan
    async def theirs(app: App) -> AsyncIterator[dict[str, str]]:
        yield {"pool": "the router's"}

    app.include(router)
    with pytest.raises(ConfigurationError, match=r"app\.state\.pool is set already"):
        await app.start()


async def test_a_mapping_yielded_by_the_apps_lifespan_is_set_as_attributes(uid: str) -> None:
    app, router = App(f"memory://{uid}"), Router()

    @app.lifespan
    async def own(app: App) -> AsyncIterator[dict[str, int]]:
        yield {"x": 1}

    @router.lifespan
    async def theirs(app: App) -> AsyncIterator[dict[str, int]]:
        yield {"y": 2}

    app.include(router)
    async with app:
        assert (app.state.x, app.state.y) == (1, 2)


async def test_app_state_stays_readable_after_close_and_a_restart_starts_afresh(
    uid: str,
) -> None:
    app, router = App(f"memory://{uid}"), Router()
    app.state.config = "set before start"
    runs = iter([1, 2])

    @router.lifespan
    async def theirs(app: App) -> AsyncIterator[dict[str, int]]:
        yield {"y": next(runs)}

    app.include(router)
    async with app:
        assert app.state.y == 1
    assert app.state.y == 1, "what the lifespans left stays readable after close"
    async with app:
        assert (app.state.y, app.state.config) == (2, "set before start")


async def test_a_dunder_name_yielded_is_refused(uid: str) -> None:
    router = Router()

    @router.lifespan
    async def theirs(app: App) -> AsyncIterator[dict[str, int]]:
        yield {"__class__": 3}

    app = App(f"memory://{uid}")
    app.include(router)
    with pytest.raises(ConfigurationError, match="__class__"):
        await app.start()


def sync_generator(app: App) -> Iterator[None]:
    yield


async def coroutine_function(app: App) -> None: ...


@pytest.mark.parametrize("fn", [sync_generator, coroutine_function])
def test_a_lifespan_that_is_no_async_generator_is_refused_when_decorated(fn: Any) -> None:
    with pytest.raises(ConfigurationError, match="async generator"):
        App("memory://").lifespan(fn)


async def test_a_function_returning_no_context_manager_fails_start_clearly(uid: str) -> None:
    app = App(f"memory://{uid}")
    app.lifespan(lambda app: None)
    with pytest.raises(ConfigurationError, match="not an async context manager"):
        await app.start()


async def test_a_lifespan_cannot_be_set_on_a_running_app(uid: str) -> None:
    app = App(f"memory://{uid}")
    async with app:
        with pytest.raises(ConfigurationError, match="before the App starts"):

            @app.lifespan
            async def late(app: App) -> AsyncIterator[None]:
                yield


async def test_a_lifespan_swallowing_a_later_failure_does_not_start_the_app(uid: str) -> None:
    app, router = App(f"memory://{uid}"), Router()

    @app.lifespan
    async def swallows(app: App) -> AsyncIterator[None]:
        with contextlib.suppress(Exception):
            yield

    @router.lifespan
    async def fails(app: App) -> AsyncIterator[None]:
        raise RuntimeError("db unreachable")
        yield

    app.include(router)
    with pytest.raises(RuntimeError, match="db unreachable"):
        await app.start()
    assert not app.transport.connected


async def test_a_signal_while_a_lifespan_is_entering_stops_the_start(uid: str) -> None:
    app, left = App(f"memory://{uid}"), asyncio.Event()
    entering = asyncio.Event()

    @app.lifespan
    async def hangs(app: App) -> AsyncIterator[None]:
        entering.set()
        try:
            await asyncio.sleep(3600)
        finally:
            left.set()
        yield

    serving = asyncio.create_task(app.run())
    await entering.wait()
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(serving, 5)
    assert left.is_set()
    await wait_for(lambda: not app.transport.connected, what="the App to disconnect")


async def test_a_teardown_that_hangs_is_named_in_the_log_and_then_let_finish(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A lifespan whose code after ``yield`` does not return (a pool whose close hangs) left a
    closing App silent after "draining handlers": it is named once it has run
    ``shutdown_timeout`` (at least a second), and not cancelled: it may still be writing."""
    release, finished = asyncio.Event(), asyncio.Event()
    app = App("memory://", shutdown_timeout=0.2)

    @app.lifespan
    async def pool(app: App) -> AsyncIterator[None]:
        yield
        await release.wait()
        finished.set()

    await app.start()
    closing = asyncio.ensure_future(app.close())
    warned = lambda: [r for r in caplog.records if "teardown" in r.getMessage()]  # noqa: E731
    await wait_for(lambda: bool(warned()), 5, "a warning naming the lifespans' teardown")
    assert not closing.done()
    release.set()
    await asyncio.wait_for(closing, 5)
    assert finished.is_set()
    assert len(warned()) == 1
