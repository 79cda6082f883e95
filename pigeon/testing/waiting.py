"""Awaitable, deadline-bounded waits for tests: wait for a condition, never sleep for a guess."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from pigeon.app import App
from pigeon.message import Message


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0, what: str = ""
) -> None:
    """Check ``condition`` (sync or async) every 10 ms until it holds; fail the test after
    ``timeout`` seconds, naming ``what`` was awaited."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or condition}")
        await asyncio.sleep(0.01)


async def wait_dead_letters(app: App, queue: str, count: int) -> list[Message]:
    """Wait until ``queue`` holds at least ``count`` dead letters; return them."""
    letters: list[Message] = []

    async def enough() -> bool:
        nonlocal letters
        letters = await app.dead_letters(queue)
        return len(letters) >= count

    await wait_for(enough, what=f"{count} dead letters on {queue}")
    return letters
