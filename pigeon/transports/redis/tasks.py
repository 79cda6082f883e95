"""Stopping background tasks that block in redis-py calls."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


async def cancel_all(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait until each has ended.

    The cancel is repeated until it takes: on Python 3.11, ``asyncio.wait_for`` (which redis-py
    uses around socket writes) can swallow a cancel, and the task would go on to its next
    blocking read.
    """
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.05)
