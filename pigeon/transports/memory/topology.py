"""The state behind ``memory://``: queues, bindings and dead letters, shared within a process.

Every ``MemoryTransport`` with the same URL talks to the same ``MemoryBroker``, so several Apps in
one process (services in a test, or the quickstart) reach each other as they would over a broker.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import operator
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pigeon.errors import DeclarationConflict
from pigeon.message import Envelope, Failure
from pigeon.subjects import specificity
from pigeon.transports.memory.sublist import Sublist
from pigeon.transports.replies import ReplyMap

if TYPE_CHECKING:
    from pigeon.transports.memory.consumer import MemorySubscription

QUEUE_CAPACITY = 10_000
"""Items a consumed queue holds before producers outside handlers wait for room (backpressure);
``App("memory://", queue_capacity=N)`` sets another."""

handling: ContextVar[bool] = ContextVar("pigeon_memory_handling", default=False)
"""True in a memory subscription's pump and the handler tasks it starts: code there never waits
for room, as the queue it would wait on may be its own (or one whose consumer waits on it)."""


class Item:
    """A message waiting in a queue, with the broker's own counts, and the ``Delivery`` it becomes.

    A subscription hands the item itself to its handler (one object per message and queue, not
    two). An item is delivered at most once: a message put back on its queue (redelivered, or
    returned by a closing subscription) goes as a new item (``again``), so settling a delivery
    that was already put back is a no-op, as the seam requires.
    """

    __slots__ = (
        "attempt",
        "envelope",
        "position",
        "queued_at",
        "returns",
        "subject",
        "subscription",
    )

    def __init__(
        self,
        envelope: Envelope,
        subject: str,
        attempt: int = 0,
        returns: int = 0,
        queued_at: float | None = None,
    ) -> None:
        self.envelope = envelope
        self.subject = subject
        self.attempt = attempt
        """Times handed to a handler, redeliveries and this delivery included."""
        self.returns = returns
        """Times a delivery ended unsettled (its worker stopped or died before settling it)."""
        self.queued_at = queued_at
        """When it was put back on its queue from the dead letters (``time.time()``); ``None``:
        it waits since its envelope's timestamp. Its age in ``backlog`` counts from here."""
        self.subscription: MemorySubscription | None = None
        """The subscription it was handed to; ``None`` until then."""
        self.position = _next_position()
        """Its place in the order items joined the back of a queue (``put_back`` keeps it)."""

    def again(self, *, returned: bool = False) -> Item:
        """A new item of the same message with the same counts (``returned``: one more return),
        to put back on the queue; it keeps its ``position`` until ``put`` gives it a new one."""
        item = Item(
            self.envelope, self.subject, self.attempt, self.returns + returned, self.queued_at
        )
        item.position = self.position
        return item

    def ack(self) -> None:
        """Settled at the call (``settle``, written out: ~1,100 instructions fewer per event
        than a coroutine calling it, see ``Delivery.ack``)."""
        subscription = self.subscription
        if subscription is not None and subscription.unsettled.pop(self, None) is not None:
            subscription.queue.in_flight -= 1
            if subscription.broker.taps:
                subscription.tell("acked", self)

    async def redeliver(self, delay: float) -> None:
        subscription = self.subscription
        if subscription is not None and subscription.settle(self, "redelivered", delay):
            subscription.queue.put_later(self.again(), delay)

    async def dead_letter(self, failure: Failure) -> None:
        subscription = self.subscription
        if subscription is not None and subscription.settle(self, "dead_lettered"):
            subscription.queue.dead.append(self.envelope.with_headers(failure.as_headers()))


def new_item(envelope: Envelope, subject: str) -> Item:
    """``Item(envelope, subject)``, its slots set here: calling ``Item`` (a Python ``__init__``
    called from C) costs about 600 instructions more, once per event and subscription."""
    item: Item = _new_object(Item)
    item.envelope = envelope
    item.subject = subject
    item.attempt = 0
    item.returns = 0
    item.queued_at = None
    item.subscription = None
    item.position = _next_position()
    return item


_new_object = object.__new__
_next_position = itertools.count().__next__
_position = operator.attrgetter("position")


@dataclass(frozen=True, slots=True)
class Tapped:
    """What a tap of the memory broker hears (see ``MemoryBroker.taps``).

    ``kind``: ``published`` (an event), ``enqueued`` (a job, due in ``delay`` seconds),
    ``delivered``, then one of ``acked``, ``redelivered``, ``dead_lettered`` or ``returned`` (its
    subscription closed first), and ``replayed`` (a dead letter back on its queue).
    ``address``: the subject or queue name; ``queue``: the memory queue, where there is one;
    ``handler``: what the subscription calls (a pattern's bound ``handle``), for deliveries.
    """

    kind: str
    address: str
    envelope: Envelope
    queue: MemoryQueue | None = None
    attempt: int = 0
    delay: float = 0.0
    handler: object | None = None


Tap = Callable[[Tapped], None]
"""Told of everything the memory broker does; must be quick and must not raise."""


class MemoryQueue:
    """A FIFO of items consumed by competing consumers, with its dead letters.

    ``keep``: the queue outlives its consumers (durable subscriptions, work queues).
    ``delivery_limit``: returns after which an item is dead-lettered (work queues only).
    ``pattern``: the subject it is bound to (subscription and RPC queues). ``in_flight`` counts
    items handed to handlers and not settled yet, ``delayed`` the items waiting for their delay,
    ``handing`` those on their way to a consumer. ``capacity``: ready items at which the queue is
    ``full`` while it has a consumer (see ``wait_room``).
    """

    def __init__(
        self,
        name: str,
        *,
        keep: bool,
        delivery_limit: int | None = None,
        pattern: str | None = None,
        capacity: int = QUEUE_CAPACITY,
    ) -> None:
        self.name = name
        self.keep = keep
        self.delivery_limit = delivery_limit
        self.pattern = pattern
        self.capacity = capacity
        self.low_water = capacity // 2
        """Ready items at or below which waiting producers are woken."""
        self.producers: deque[asyncio.Future[None]] = deque()
        """Producers waiting for room."""
        self.ready: deque[Item] = deque()
        self.dead: list[Envelope] = []
        self.consumers = 0
        self.in_flight = 0
        self.handing = 0
        """Items handed to a waiting consumer that has not taken them yet."""
        self._timers: set[asyncio.TimerHandle] = set()
        self.waiters: deque[asyncio.Future[Item]] = deque()
        """Consumers waiting in ``get`` (``put`` hands an item straight to the first)."""

    def counts(self) -> tuple[int, int, int, int, float | None]:
        """``(ready, unacked, dead letters, consumers, head's timestamp)`` now, for ``backlog``:
        items handed to a consumer that has not taken them yet count as unacked."""
        head = None
        if self.ready:
            first = self.ready[0]
            head = first.envelope.timestamp if first.queued_at is None else first.queued_at
        unacked = self.in_flight + self.handing
        return len(self.ready), unacked, len(self.dead), self.consumers, head

    @property
    def full(self) -> bool:
        """Whether a producer should wait: ``capacity`` items ready and someone to take them (a
        queue nobody consumes keeps what it is sent, as a broker stores it)."""
        return len(self.ready) >= self.capacity and self.consumers > 0

    async def wait_room(self) -> None:
        """Wait while the queue is ``full``; at once inside a memory handler (see ``handling``)."""
        while self.full and not handling.get():
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.producers.append(waiter)
            try:
                await waiter
            finally:
                if not waiter.done():
                    waiter.cancel()

    def make_room(self, *, always: bool = False) -> None:
        """Wake the producers waiting for room once the queue is down to ``low_water`` (or
        ``always``: its consumer left)."""
        if always or len(self.ready) <= self.low_water:
            producers, self.producers = self.producers, deque()
            for waiter in producers:
                if not waiter.done():
                    waiter.set_result(None)

    @property
    def delayed(self) -> int:
        """Items waiting for their delay to pass."""
        return len(self._timers)

    def put_later(self, item: Item, delay: float) -> None:
        """Add ``item`` after ``delay`` seconds (on the running loop's clock); now if <= 0."""
        if delay <= 0:
            self.put(item)
            return

        def due() -> None:
            self._timers.discard(handle)
            self.put(item)

        handle = asyncio.get_running_loop().call_later(delay, due)
        self._timers.add(handle)

    def cancel_timers(self) -> None:
        """Drop every item still waiting for its delay (the broker is being discarded)."""
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()

    def put(self, item: Item, *, front: bool = False) -> None:
        """Add ``item`` (at the back with a new ``position``, unless ``front``) or hand it on."""
        if not front:
            item.position = _next_position()
        if self._hand_to_waiter(item):
            return
        if front:
            self.ready.appendleft(item)
        else:
            self.ready.append(item)

    def put_back(self, items: list[Item]) -> None:
        """Put back ``items`` a closing consumer returns, merged into the ready ones by ``position``
        (as a RabbitMQ quorum queue returns a message to its place), the first to waiters."""
        ready = self.ready
        merged = list(heapq.merge(sorted(items, key=_position), ready, key=_position))
        ready.clear()
        ready.extend(merged)
        while ready and self._hand_to_waiter(ready[0]):
            ready.popleft()

    def _hand_to_waiter(self, item: Item) -> bool:
        """Hand ``item`` to the first consumer still waiting in ``get``; ``False`` if none is."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(item)
                self.handing += 1
                return True
        return False

    async def get(self) -> Item:
        """Take the next item, waiting for one."""
        if self.ready:
            item = self.ready.popleft()
            if self.producers:
                self.make_room()
            return item
        waiter: asyncio.Future[Item] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            item = await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.handing -= 1
                self.put(waiter.result(), front=True)
            raise
        self.handing -= 1
        return item


class MemoryBroker:
    """Routes events to subscription queues and holds work queues, by name.

    Routing walks a token trie of the bindings (``Sublist``), so its cost grows with the
    subject's tokens, not with the number of subscriptions; its cache of routes is bounded.
    ``capacity``: the ``MemoryQueue.capacity`` of queues made from now on.
    """

    def __init__(self) -> None:
        self.queues: dict[str, MemoryQueue] = {}
        self.inboxes: dict[str, ReplyMap] = {}
        self.capacity = QUEUE_CAPACITY
        self.events: Sublist[MemoryQueue] = Sublist()  # subscription queues, by their pattern
        self.rpc: Sublist[MemoryQueue] = Sublist()  # RPC queues, by the subject they serve
        self.taps: list[Tap] = []

    def tell(self, tapped: Tapped) -> None:
        """Tell every tap (none but a test harness's, usually) what happened."""
        for tap in self.taps:
            tap(tapped)

    def route(self, subject: str) -> tuple[MemoryQueue, ...]:
        """The subscription queues an event on ``subject`` goes to."""
        return self.events.match(subject)

    def servers(self, subject: str) -> list[MemoryQueue]:
        """The RPC queues serving ``subject`` with a consumer now, most specific first."""
        found = [queue for queue in self.rpc.match(subject) if queue.consumers]
        return sorted(found, key=lambda queue: specificity(queue.pattern or ""))

    def event_queue(self, name: str, pattern: str, *, keep: bool) -> MemoryQueue:
        """The subscription queue ``name`` bound to ``pattern``, made on first use."""
        return self._queue(name, pattern, keep=keep, bindings=self.events)

    def rpc_queue(self, subject: str) -> MemoryQueue:
        """The queue shared by every server of ``subject``."""
        return self._queue(f"rpc:{subject}", subject, keep=False, bindings=self.rpc)

    def work_queue(self, name: str, delivery_limit: int, *, strict: bool = True) -> MemoryQueue:
        """The work queue ``name``, made on first use by a producer or a worker. ``strict`` (a
        worker): an existing queue with another ``delivery_limit`` is a ``DeclarationConflict``;
        a producer uses it as it is."""
        queue = self.queues.get(f"work:{name}")
        if queue is None:
            queue = MemoryQueue(
                name, keep=True, delivery_limit=delivery_limit, capacity=self.capacity
            )
            self.queues[f"work:{name}"] = queue
        elif strict and queue.delivery_limit != delivery_limit:
            raise DeclarationConflict(
                f"work queue {name!r} exists with delivery_limit={queue.delivery_limit}, this App "
                f"declares {delivery_limit}; give every App of the queue the same delivery_limit"
            )
        return queue

    def existing_work_queue(self, name: str) -> MemoryQueue | None:
        """The work queue ``name`` if anyone used it."""
        return self.queues.get(f"work:{name}")

    def release(self, queue: MemoryQueue) -> None:
        """A consumer left ``queue``: delete it if it is not kept and nobody consumes it."""
        queue.consumers -= 1
        if queue.consumers <= 0:
            queue.make_room(always=True)  # nobody takes from it: its producers stop waiting
        if queue.keep or queue.consumers > 0:
            return
        if self.queues.get(queue.name) is queue:
            del self.queues[queue.name]
        if queue.pattern is not None:
            self.events.remove(queue.pattern, queue)
            self.rpc.remove(queue.pattern, queue)

    def _queue(
        self, name: str, pattern: str, *, keep: bool, bindings: Sublist[MemoryQueue]
    ) -> MemoryQueue:
        queue = self.queues.get(name)
        if queue is None:
            queue = MemoryQueue(name, keep=keep, pattern=pattern, capacity=self.capacity)
            self.queues[name] = queue
            bindings.insert(pattern, queue)
        return queue


_BROKERS: dict[str, MemoryBroker] = {}


def broker_named(name: str) -> MemoryBroker:
    """The process-wide broker of ``memory://<name>``."""
    broker = _BROKERS.get(name)
    if broker is None:
        broker = _BROKERS[name] = MemoryBroker()
    return broker


def discard_broker(name: str) -> None:
    """Forget the broker of ``memory://<name>`` and drop its delayed items (a test's end)."""
    broker = _BROKERS.pop(name, None)
    if broker is not None:
        for queue in broker.queues.values():
            queue.cancel_timers()
