"""Memory subscriptions: a pump from one queue into a handler, and the settling of what it
hands over (the queue's items themselves, see ``Item``)."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any

from pigeon.transports.base import DirectCall, Handler, direct_call
from pigeon.transports.memory.topology import Item, MemoryBroker, MemoryQueue, Tapped, handling
from pigeon.transports.runner import (
    HandlerRunner,
    goes_on_after_cancel,
    started_in,
    withdraw_own_cancel,
)
from pigeon.transports.slow import SlowConsumers


def _never(*args: object) -> Any:
    raise AssertionError("called without a DirectCall")


_NO_DIRECT_CALL: DirectCall = (_never, _never, _never)


class MemorySubscription:
    """Pumps items from one queue into a handler, at most ``concurrency`` at once.

    With ``concurrency=1`` the handler runs inline in the pump, in order and without a task per
    message; otherwise each call is a task of a ``HandlerRunner``. ``drops`` counts the items
    its queue held when it closed, if the queue went with it.

    ``hand_on`` (an rpc server's): closing, the subscription leaves its queue at once, and if it
    was the last consumer, every item still waiting in it goes to ``hand_on`` (another server, or
    a "not served" answer) instead of waiting for the handlers to finish; started items are not
    handed back (their callers heard ``ServerStopped``).
    """

    def __init__(
        self,
        broker: MemoryBroker,
        queue: MemoryQueue,
        handler: Handler,
        concurrency: int,
        drops: SlowConsumers | None = None,
        hand_on: Callable[[Item], None] | None = None,
    ) -> None:
        self.queue = queue
        self._drops = drops
        self._hand_on = hand_on
        self.broker = broker
        self._handler = handler
        self._runner = HandlerRunner(concurrency, handler=handler, groups_keep=True)
        self.unsettled: dict[Item, Item] = {}
        """Items handed to the handler and not settled yet (``Item.ack`` settles them itself)."""
        self._stranded: set[Item] = set()
        """Unsettled items of calls that cancelled their own task: handed back at the close."""
        self._closing = False
        self._closed = False
        queue.consumers += 1
        self._inline = concurrency == 1
        pump = self._pump_inline() if self._inline else self._pump_tasks()
        self._pump_task = asyncio.create_task(pump)

    def settle(self, item: Item, how: str, delay: float = 0.0) -> bool:
        """Mark the delivered ``item`` settled (``how``: the tap's kind); ``False`` if it already
        was (or was put back on the queue since)."""
        if self.unsettled.pop(item, None) is None:
            return False
        self.queue.in_flight -= 1
        if self.broker.taps:
            self.tell(how, item, delay)
        return True

    def tell(self, kind: str, item: Item, delay: float = 0.0) -> None:
        tapped = Tapped(
            kind, item.subject, item.envelope, self.queue, item.attempt, delay, self._handler
        )
        self.broker.tell(tapped)

    async def close(self, timeout: float) -> None:
        if self._closed:
            return
        self._closed = self._closing = True
        if self._hand_on is not None:
            self.broker.release(self.queue)  # new requests go to other servers, or fail now
            self._hand_on_ready()
        if self._inline and self._held() and not self._pump_task.done():  # handler running
            _, running = await asyncio.wait({self._pump_task}, timeout=timeout)
            if running and self._held():
                self._runner.log_cut_off(self._held(), timeout)
        self._pump_task.cancel()
        await asyncio.gather(self._pump_task, return_exceptions=True)
        if self._hand_on is not None:
            self._hand_on_ready()  # an item the cancelled pump was being handed
        await self._runner.drain(timeout)
        if self._hand_on is not None:
            self.unsettled.clear()
            return
        held = len(self.queue.ready)  # never handed to a handler
        for item in self.unsettled:
            self.queue.in_flight -= 1
            if self.broker.taps:
                self.tell("returned", item)
        self.queue.put_back([item.again(returned=True) for item in self.unsettled])
        self.unsettled.clear()
        self.broker.release(self.queue)
        self._dropped_with_queue(held)

    def _held(self) -> int:
        """Items a handler holds now (not those a handler that cancelled itself left)."""
        self._stranded.intersection_update(self.unsettled)
        return len(self.unsettled) - len(self._stranded)

    def _hand_on_ready(self) -> None:
        """Give every item waiting in the queue to ``hand_on``, if no consumer is left for them."""
        assert self._hand_on is not None
        ready = self.queue.ready
        while ready and self.queue.consumers <= 0:
            self._hand_on(ready.popleft())

    def _dropped_with_queue(self, held: int) -> None:
        """Count ``held`` items as dropped if the queue went when its last consumer left."""
        queue = self.queue
        if self._drops is not None and not queue.keep and queue.consumers <= 0:
            why = "a plain subscription or a group keeps nothing once closed; use durable="
            self._drops.dropped_at_close(queue.pattern or queue.name, held, why)

    async def _pump_inline(self) -> None:
        handling.set(True)  # this task's context: the handler never waits for room
        # what each call sees, as in a task of its own (see runner.started_in)
        await self._call_one_by_one(contextvars.copy_context())

    async def _call_one_by_one(self, base: contextvars.Context) -> None:
        """The pump of ``concurrency=1``: each item's handler called in this task, in a copy of
        ``base`` once a call changed the task's context. A pattern's ``DirectCall`` is made
        here, without the pattern's coroutine (~1,700 instructions fewer per event)."""
        isolating, handled, copy_context = False, 0, contextvars.copy_context
        queue, handler, unsettled, broker = self.queue, self._handler, self.unsettled, self.broker
        task, ready = asyncio.current_task(), queue.ready
        assert task is not None
        direct = direct_call(handler)
        decode, fn, failed = direct or _NO_DIRECT_CALL
        while not self._closing:
            item = ready.popleft() if ready else await queue.get()
            if queue.producers and len(ready) <= queue.low_water:
                queue.make_room()
            item.attempt += 1  # _deliver, inlined: the loop runs once per message
            item.subscription = self
            unsettled[item] = item
            queue.in_flight += 1
            if broker.taps:
                self.tell("delivered", item)
            try:
                if isolating:
                    rest = started_in(base.copy(), handler(item))
                    if rest is not None:  # the handler waited: the rest, in its context too
                        await rest
                elif direct and not item.returns:
                    envelope = item.envelope
                    try:
                        await fn(decode(envelope.body, envelope.content_type, envelope.headers))
                    except BaseException as exc:
                        failed(item, exc)
                    if unsettled.pop(item, None) is not None:  # Item.ack, inlined
                        queue.in_flight -= 1
                        if broker.taps:
                            self.tell("acked", item)
                    isolating = copy_context() != base  # O(1) while unchanged
                else:
                    await handler(item)
                    isolating = copy_context() != base
            except asyncio.CancelledError:
                if not goes_on_after_cancel(self._closing):
                    raise
                isolating = True  # what the cancelled call set stays in this task's context
                if item in unsettled:  # no handler holds it now: the close hands it back
                    self._stranded.add(item)
            if task.cancelling() and not self._closing:  # it cancelled itself, then returned
                await withdraw_own_cancel(task)
                isolating = True
            handled += 1
            if handled % 128 == 0:
                await asyncio.sleep(0)  # a busy queue must not starve its publishers

    async def _pump_tasks(self) -> None:
        handling.set(True)  # copied into each handler task's context
        runner = self._runner
        queue = self.queue
        while True:
            if runner.free <= 0:
                await runner.wait_free()
            item = queue.ready.popleft() if queue.ready else await queue.get()
            if queue.producers and len(queue.ready) <= queue.low_water:
                queue.make_room()
            runner.start(self._handler(self._deliver(item)))

    def _deliver(self, item: Item) -> Item:
        item.attempt += 1
        item.subscription = self
        self.unsettled[item] = item
        self.queue.in_flight += 1
        if self.broker.taps:
            self.tell("delivered", item)
        return item
