"""Closing an App from one of its own handlers.

``App.close`` waits for the handlers in flight; awaited inside one of them it would wait for
itself until ``shutdown_timeout`` and then cancel the very task running it. The tasks an App
starts (a transport's readers, its subscriptions' pumps and handler tasks) are created inside
``serving(app)``, so they carry the App in a context variable, as every task inherits its
creator's context; ``close`` asked from such a task runs in a task of its own instead
(``in_background``), which waits for that handler to return like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Coroutine, Iterator
from typing import Any

log = logging.getLogger("pigeon")

_SERVING: contextvars.ContextVar[object | None] = contextvars.ContextVar(
    "pigeon_serving_app", default=None
)


@contextlib.contextmanager
def serving(app: object) -> Iterator[None]:
    """Tasks created inside this block (by the caller's task) belong to ``app``; the caller's
    own context is as before once it is left."""
    token = _SERVING.set(app)
    try:
        yield
    finally:
        _SERVING.reset(token)


def inside(app: object) -> bool:
    """Whether the current task is one ``app`` started (see ``serving``)."""
    return _SERVING.get() is app


def in_background(close: Coroutine[Any, Any, None], *, unawaited: bool) -> asyncio.Task[None]:
    """Run ``close`` in a task of its own, outside every App's tasks; what it raises is logged
    if ``unawaited`` (asked by a handler, which does not wait for it), else the caller gets it."""
    context = contextvars.copy_context()
    context.run(_SERVING.set, None)
    task = asyncio.get_running_loop().create_task(close, context=context)
    if unawaited:
        task.add_done_callback(_log_failure)
    return task


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("pigeon: closing the App failed: %r", error, exc_info=error)
