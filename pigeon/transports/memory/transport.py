"""``memory://``: the embedded transport, with real acks, redelivery, delays and dead letters.

It gives the same semantics as the broker transports (the conformance suite runs on it), so it is
both the default for a single process and a faithful test harness. ``memory://name`` selects a
broker by name; every App of a process with the same URL shares it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from pigeon import headers as h
from pigeon.errors import BrokerError, ConfigurationError, NoResponders
from pigeon.message import Envelope, Failure, new_id
from pigeon.transports.base import Handler, QueueSettings
from pigeon.transports.memory.topology import Item, MemoryBroker, MemoryQueue, broker_named
from pigeon.transports.replies import ReplyMap
from pigeon.transports.runner import HandlerRunner

log = logging.getLogger("pigeon")

INBOX_PREFIX = "_INBOX."


class MemoryDelivery:
    """A delivery from a memory queue; see ``pigeon.transports.base.Delivery``."""

    __slots__ = ("_item", "_subscription", "attempt", "envelope", "subject")

    def __init__(self, item: Item, subscription: MemorySubscription) -> None:
        self._item = item
        self._subscription = subscription
        self.envelope = item.envelope
        self.subject = item.subject
        self.attempt = item.deliveries

    async def ack(self) -> None:
        self._subscription.settle(self)

    async def redeliver(self, delay: float) -> None:
        self._subscription.settle(self)
        queue = self._subscription.queue
        asyncio.get_running_loop().call_later(delay, queue.put, self._item)

    async def dead_letter(self, failure: Failure) -> None:
        self._subscription.settle(self)
        self._subscription.queue.dead.append(self.envelope.with_headers(failure.as_headers()))


class MemorySubscription:
    """Pumps items from one queue into a handler, at most ``concurrency`` at once.

    With ``concurrency=1`` the handler runs inline in the pump, in order and without a task per
    message; otherwise each call is a task of a ``HandlerRunner``.
    """

    def __init__(
        self, broker: MemoryBroker, queue: MemoryQueue, handler: Handler, concurrency: int
    ) -> None:
        self.queue = queue
        self._broker = broker
        self._handler = handler
        self._runner = HandlerRunner(concurrency)
        self._unsettled: dict[int, MemoryDelivery] = {}
        self._closing = False
        self._closed = False
        queue.consumers += 1
        self._inline = concurrency == 1
        pump = self._pump_inline() if self._inline else self._pump_tasks()
        self._pump_task = asyncio.create_task(pump)

    def settle(self, delivery: MemoryDelivery) -> None:
        self._unsettled.pop(id(delivery), None)

    async def close(self, timeout: float) -> None:
        if self._closed:
            return
        self._closed = self._closing = True
        if self._inline and self._unsettled and not self._pump_task.done():  # handler running
            await asyncio.wait({self._pump_task}, timeout=timeout)
        self._pump_task.cancel()
        await asyncio.gather(self._pump_task, return_exceptions=True)
        await self._runner.drain(timeout)
        for delivery in self._unsettled.values():
            delivery._item.returns += 1
            self.queue.put(delivery._item, front=True)
        self._unsettled.clear()
        self._broker.release(self.queue)

    async def _pump_inline(self) -> None:
        handled = 0
        queue = self.queue
        while not self._closing:
            delivery = self._deliver(queue.ready.popleft()) if queue.ready else await self._next()
            if delivery is not None:
                await self._handler(delivery)
                handled += 1
                if handled % 128 == 0:
                    await asyncio.sleep(0)  # a busy queue must not starve its publishers

    async def _pump_tasks(self) -> None:
        runner = self._runner
        while True:
            if runner.free <= 0:
                await runner.wait_free()
            delivery = await self._next()
            if delivery is not None:
                runner.start(self._handler(delivery))

    async def _next(self) -> MemoryDelivery | None:
        queue = self.queue
        return self._deliver(queue.ready.popleft() if queue.ready else await queue.get())

    def _deliver(self, item: Item) -> MemoryDelivery | None:
        queue = self.queue
        if queue.delivery_limit is not None and item.returns >= queue.delivery_limit:
            self._dead_letter_over_limit(item)
            return None
        item.deliveries += 1
        delivery = MemoryDelivery(item, self)
        self._unsettled[id(delivery)] = delivery
        return delivery

    def _dead_letter_over_limit(self, item: Item) -> None:
        error = RuntimeError(
            f"delivered {item.returns} times without being settled (its worker kept stopping "
            "or dying); dead-lettered instead of delivered again"
        )
        failure = Failure.of(error, attempts=item.deliveries, queue=self.queue.name)
        failure = replace(failure, error_type="DeliveryLimitExceeded")
        self.queue.dead.append(item.envelope.with_headers(failure.as_headers()))
        log.error(
            "pigeon: %s dead-lettered %s: %s", self.queue.name, item.envelope.message_id, error
        )


class MemoryTransport:
    """The in-process transport; see ``pigeon.transports.base.Transport`` for the contract."""

    def __init__(self, url: str, settings: QueueSettings, options: dict[str, Any]) -> None:
        if options:
            raise ConfigurationError(f"memory:// takes no transport options, got {sorted(options)}")
        parts = urlsplit(url)
        self.url = url
        self._settings = settings
        self._broker = broker_named(parts.netloc + parts.path or "default")
        self._inbox = f"{INBOX_PREFIX}{new_id()}"
        self._replies = ReplyMap()
        self._subscriptions: list[MemorySubscription] = []
        self._connected = False

    @property
    def connected(self) -> bool:
        return self._connected

    async def connect(self) -> None:
        self._broker.inboxes[self._inbox] = self._replies
        self._connected = True

    async def close(self) -> None:
        if not self._connected:
            return
        self._connected = False
        for subscription in self._subscriptions:
            await subscription.close(0)
        self._subscriptions.clear()
        self._broker.inboxes.pop(self._inbox, None)
        self._replies.fail_all(BrokerError(f"{self.url}: connection closed"))

    async def publish(self, subject: str, envelope: Envelope) -> None:
        self._check()
        for queue in self._broker.route(subject):
            queue.put(Item(envelope, subject))

    async def subscribe(
        self,
        subject: str,
        handler: Handler,
        *,
        group: str | None,
        durable: str | None,
        concurrency: int,
    ) -> MemorySubscription:
        self._check()
        if durable is not None:
            queue = self._broker.event_queue(f"durable:{durable}", subject, keep=True)
        elif group is not None:
            queue = self._broker.event_queue(f"group:{subject}:{group}", subject, keep=False)
        else:
            queue = self._broker.event_queue(f"sub:{new_id()}", subject, keep=False)
        return self._start(queue, handler, concurrency)

    async def serve(
        self, subject: str, handler: Handler, *, concurrency: int
    ) -> MemorySubscription:
        self._check()
        return self._start(self._broker.rpc_queue(subject), handler, concurrency)

    async def request(self, subject: str, envelope: Envelope, timeout: float) -> Envelope:
        self._check()
        servers = self._broker.servers(subject)
        if not servers:
            raise NoResponders(f"nobody serves {subject!r} on {self.url}; start its rpc handler")
        correlation_id = envelope.correlation_id or envelope.message_id
        envelope = replace(envelope, correlation_id=correlation_id, reply_to=self._inbox)
        self._replies.expect(correlation_id)
        servers[0].put(Item(envelope, subject))
        return await self._replies.wait(correlation_id, subject, timeout)

    async def reply(self, reply_to: str, envelope: Envelope) -> None:
        self._check()
        replies = self._broker.inboxes.get(reply_to)
        if replies is not None:
            replies.resolve(envelope)

    async def enqueue(self, queue: str, envelope: Envelope) -> None:
        self._check()
        self._work_queue(queue).put(Item(envelope, queue))

    async def consume(
        self, queue: str, handler: Handler, *, concurrency: int
    ) -> MemorySubscription:
        self._check()
        return self._start(self._work_queue(queue), handler, concurrency)

    async def dead_letters(self, queue: str, limit: int | None = None) -> list[Envelope]:
        self._check()
        known = self._broker.existing_work_queue(queue)
        return list(known.dead[:limit]) if known else []

    async def replay_dead_letters(self, queue: str, limit: int | None = None) -> int:
        self._check()
        known = self._broker.existing_work_queue(queue)
        if known is None:
            return 0
        moved = known.dead[:limit]
        del known.dead[: len(moved)]
        for envelope in moved:
            known.put(Item(envelope.without_headers(h.FAILURE_HEADERS), queue))
        return len(moved)

    async def purge_dead_letters(self, queue: str) -> int:
        self._check()
        known = self._broker.existing_work_queue(queue)
        if known is None:
            return 0
        count = len(known.dead)
        known.dead.clear()
        return count

    def _work_queue(self, name: str) -> MemoryQueue:
        return self._broker.work_queue(name, self._settings.delivery_limit)

    def _start(self, queue: MemoryQueue, handler: Handler, concurrency: int) -> MemorySubscription:
        subscription = MemorySubscription(self._broker, queue, handler, concurrency)
        self._subscriptions.append(subscription)
        return subscription

    def _check(self) -> None:
        if not self._connected:
            raise BrokerError(f"{self.url}: not connected; use 'async with app:' or 'app.run()'")
