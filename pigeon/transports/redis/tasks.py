"""The background tasks of the Redis transport: starting them so that none ends unseen, and
stopping those that block in redis-py calls."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Coroutine, Iterable
from typing import Any

log = logging.getLogger("pigeon")


def watched(work: Coroutine[Any, Any, None], what: str) -> asyncio.Task[None]:
    """Run ``work`` (a reader or a heartbeat, which runs until cancelled; a promotion, a
    registration) as a task. Should it end on an error, the error is logged at once, naming
    ``what``, rather than when the task is collected ("Task exception was never retrieved")."""
    task = asyncio.create_task(work)
    task.add_done_callback(functools.partial(_report, what))
    return task


def _report(what: str, task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("pigeon: %s stopped on an error: %r", what, error, exc_info=error)


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
