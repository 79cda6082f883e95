"""Bounded concurrency for handler calls, shared by every transport."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("pigeon")


class HandlerRunner:
    """Runs handler calls as tasks, at most ``limit`` at once, and drains them on close."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._tasks: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()

    @property
    def free(self) -> int:
        """How many more calls may start now."""
        return self._limit - len(self._tasks)

    async def wait_free(self) -> int:
        """Wait until at least one slot is free; return how many are."""
        while self.free <= 0:
            self._slot_freed.clear()
            await self._slot_freed.wait()
        return self.free

    def start(self, call: Coroutine[Any, Any, None]) -> None:
        """Start ``call`` in a free slot (the caller checked ``free``)."""
        task = asyncio.create_task(call)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    async def run(self, call: Coroutine[Any, Any, None]) -> None:
        """Wait for a free slot, then start ``call``."""
        if self.free <= 0:
            await self.wait_free()
        self.start(call)

    async def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for running calls, cancel the rest; return how many were
        cancelled."""
        if not self._tasks:
            return 0
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        return len(pending)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slot_freed.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("pigeon: handler task failed", exc_info=task.exception())
