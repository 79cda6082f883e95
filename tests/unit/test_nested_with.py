"""An App entered again while it runs (a test harness and a web framework's lifespan around
one App) stays up until the block that started it is left."""

from __future__ import annotations

import asyncio

from pigeon import App
from pigeon.testing.harness import Harness


def _echo_app() -> App:
    app = App("memory://")

    @app.rpc("nested.echo")
    async def echo(n: int) -> int:
        return n

    return app


async def test_an_inner_block_leaves_the_app_running_and_the_outer_one_closes_it() -> None:
    app = _echo_app()
    async with app:
        async with app:
            assert await app.request("nested.echo", 1, reply=int, timeout=5) == 1
        assert app.ready
        assert await app.request("nested.echo", 2, reply=int, timeout=5) == 2
    assert not app.ready


async def test_a_block_inside_an_explicit_start_never_closes_the_app() -> None:
    app = _echo_app()
    await app.start()
    try:
        for _ in range(2):
            async with app, app:
                pass
        assert await app.request("nested.echo", 3, reply=int, timeout=5) == 3
    finally:
        await app.close()
    assert not app.ready


async def test_a_lifespan_block_inside_the_harness_leaves_the_harness_app_running() -> None:
    app = _echo_app()
    async with Harness(app) as harness:
        async with app:  # what FastAPI's lifespan does with the App it serves
            pass
        assert await harness.app.request("nested.echo", 4, reply=int, timeout=5) == 4


async def test_overlapping_blocks_in_two_tasks_close_the_app_after_the_last() -> None:
    app = _echo_app()
    first_in, second_in, first_out = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with app:
            first_in.set()
            await second_in.wait()
        first_out.set()

    async def second() -> None:
        await first_in.wait()
        async with app:
            second_in.set()
            await first_out.wait()
            assert await app.request("nested.echo", 5, reply=int, timeout=5) == 5

    await asyncio.gather(first(), second())
    assert not app.ready
