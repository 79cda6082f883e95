"""Bounded concurrency for handler calls, shared by every transport."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger("pigeon")


NextCall = Callable[[], "Coroutine[Any, Any, None] | None"]


class HandlerRunner:
    """Runs handler calls as tasks, at most ``limit`` at once, and drains them on close.

    ``next_call``: called when a call finishes; the call it returns (``None``: none waits) runs
    next in the same task and slot, which stays taken: a backlog is worked off without a task,
    and a trip through the event loop, per call."""

    def __init__(self, limit: int, next_call: NextCall | None = None) -> None:
        self._limit = limit
        self._next_call = next_call
        self._tasks: dict[Coroutine[Any, Any, None], asyncio.Task[None]] = {}  # call -> its task
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
        self._tasks[call] = asyncio.create_task(self._slot(call))

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
        _, pending = await asyncio.wait(set(self._tasks.values()), timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        for call, task in list(self._tasks.items()):  # cancelled before it ran: close its call
            if task.done():
                del self._tasks[call]
                call.close()
        return len(pending)

    async def _slot(self, call: Coroutine[Any, Any, None]) -> None:
        """Run ``call`` and those ``next_call`` gives after it, then free the slot, in the
        slot's own task: a done callback would cost the event loop one more step per call."""
        tasks = self._tasks
        try:
            while True:
                try:
                    await call
                except Exception:
                    log.exception("pigeon: handler task failed")
                following = self._next_call() if self._next_call is not None else None
                if following is None:
                    return
                tasks[following] = tasks.pop(call)
                call = following
        finally:
            tasks.pop(call, None)
            self._slot_freed.set()
