"""Core NATS events held by pigeon, not by nats-py: an exact ``max_pending``.

nats-py keeps a subscription's messages in its own queue, read by its own task; the queue's
bound cannot see the handlers, so a limit given to it drops events while handler slots sit idle
(the reader fills the queue before the task hands anything on). ``EventBuffer`` takes each
event from the connection's reader (``PigeonClient.take_directly``) and holds it in pigeon's
own buffer until a handler slot frees, as Redis's ``ChannelSubscription`` does: an event is
dropped only when those waiting and those being handled already make ``max_pending``.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from pigeon import headers as h
from pigeon.transports.cutoff import held_of, log_cut_off
from pigeon.transports.runner import (
    HandlerRunner,
    goes_on_after_cancel,
    log_task_failure,
    started_in,
    withdraw_own_cancel,
)

log = logging.getLogger("pigeon")


def is_request(msg: Any) -> bool:
    """Whether ``msg`` is a pigeon request (it carries ``x-pigeon-deadline``), not an event."""
    return bool(msg.reply and msg.headers and h.DEADLINE in msg.headers)


class EventBuffer:
    """Events of one core subscription waiting for one of ``concurrency`` handler slots, in the
    order they came; what ``PigeonClient.take_directly`` hands them to.

    Bounds: with ``max_pending``, the events waiting and being handled; else (nats-py's own
    bound, which pigeon keeps) ``pending_msgs`` events waiting. Either way the waiting events'
    payloads stay under ``pending_bytes``. ``call(msg)``: the handler's call for ``msg``;
    ``crossing(msg)``: whether a message with a reply subject is not ours (answered there);
    ``dropped()``: counts one event dropped over the bound; ``skip(msg)``: whether to ignore
    ``msg`` (it is not an event: not held, not counted).
    """

    def __init__(
        self,
        call: Callable[[Any], Coroutine[Any, Any, None]],
        concurrency: int,
        *,
        max_pending: int | None,
        pending_msgs: int,
        pending_bytes: int,
        crossing: Callable[[Any], Awaitable[bool]],
        dropped: Callable[[], None],
        skip: Callable[[Any], bool] | None = None,
        context: contextvars.Context | None = None,
        handler: Any = None,
    ) -> None:
        self._skip = skip
        self._held = held_of(handler)
        self._context = context  # what the handlers start from (None: the reading task's)
        self._call = call
        self._concurrency = concurrency
        self._runner = (
            HandlerRunner(concurrency, self._next, context, handler=handler)
            if concurrency > 1
            else None
        )
        self._counts_handled = max_pending is not None
        self._bound = pending_msgs if max_pending is None else max_pending
        self._pending_bytes = pending_bytes
        self._crossing = crossing
        self._dropped = dropped
        self._waiting: deque[Any] = deque()
        self._bytes = 0  # payload bytes of the events waiting
        self._handling_inline = 0  # concurrency 1: the pump is running a handler
        self._wakeup: asyncio.Future[None] | None = None
        self._pump: asyncio.Task[None] | None = None
        self._closed = False

    def ready(self) -> bool:
        """Whether ``take`` may be called (until ``stop``)."""
        return not self._closed

    def stop(self) -> None:
        """Take no more events, and hand no more waiting ones to the handlers."""
        self._closed = True

    def take(self, msg: Any) -> None:
        """Hold ``msg`` until a slot frees (or start it now in a free one), or drop it when the
        buffer is full. Called by the connection's reading task: never waits."""
        if self._skip is not None and self._skip(msg):
            return
        waiting = self._waiting
        size = len(msg.data)
        held = len(waiting) + self._being_handled() if self._counts_handled else len(waiting)
        if held >= self._bound or self._bytes + size >= self._pending_bytes:
            self._dropped()
            return
        runner = self._runner
        if runner is not None and runner.free > 0:  # then none waits: a freed slot takes them
            runner.start(self._screened(msg))
            return
        waiting.append(msg)
        self._bytes += size
        if runner is None and self._pump is None:
            context = None if self._context is None else self._context.copy()
            self._pump = asyncio.get_running_loop().create_task(self._deliver(), context=context)
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def _being_handled(self) -> int:
        runner = self._runner
        return self._handling_inline if runner is None else self._concurrency - runner.free

    def _next(self) -> Coroutine[Any, Any, None] | None:
        """Concurrency above 1: the call of the oldest waiting event, run by the slot that freed
        (``None``: none waits, or the buffer stopped)."""
        if self._closed or not self._waiting:
            return None
        msg = self._waiting.popleft()
        self._bytes -= len(msg.data)
        return self._screened(msg)

    def _screened(self, msg: Any) -> Coroutine[Any, Any, None]:
        """The handler's call for ``msg``, after ``crossing`` if it has a reply subject."""
        return self._call(msg) if not msg.reply else self._call_unless_crossing(msg)

    async def _call_unless_crossing(self, msg: Any) -> None:
        if not await self._crossing(msg):
            await self._call(msg)

    async def _deliver(self) -> None:
        """Concurrency 1: hand the waiting events to the handler one at a time, in order, in
        this task (no task per event)."""
        waiting = self._waiting
        loop = asyncio.get_running_loop()
        base = contextvars.copy_context()  # what each call sees, as in a task of its own
        isolating = False  # True once a call changed the task's context (see runner.started_in)
        task = asyncio.current_task()
        assert task is not None
        while not self._closed:
            if not waiting:
                self._wakeup = loop.create_future()
                await self._wakeup
                continue
            msg = waiting.popleft()
            self._bytes -= len(msg.data)
            if msg.reply and await self._crossing(msg):
                continue
            self._handling_inline = 1  # in this loop, not a method: one coroutine fewer per event
            try:
                if isolating:
                    rest = started_in(base.copy(), self._call(msg))
                    if rest is not None:  # the handler waited: the rest, in its context too
                        await rest
                else:
                    await self._call(msg)
            except asyncio.CancelledError:
                if not goes_on_after_cancel(self._closed):
                    raise
            except Exception as exc:
                log_task_failure(exc)
            finally:
                self._handling_inline = 0
                isolating = isolating or contextvars.copy_context() != base  # O(1) if unchanged
            if task.cancelling() and not self._closed:  # it cancelled itself, then returned
                await withdraw_own_cancel(task)

    async def close(self, timeout: float) -> int:
        """``stop``; let the handlers running finish (up to ``timeout`` seconds, then cancel
        them). Returns how many events were still waiting (now dropped)."""
        self._closed = True
        pump = self._pump
        if pump is not None:
            if self._handling_inline:
                _, running = await asyncio.wait([pump], timeout=timeout)
                if running and self._handling_inline:
                    log_cut_off(1, timeout, self._held)
            pump.cancel()
            await asyncio.wait([pump])
        left = sum(1 for msg in self._waiting if not is_request(msg))
        self._waiting.clear()
        self._bytes = 0
        if self._runner is not None:
            await self._runner.drain(timeout)
        return left
