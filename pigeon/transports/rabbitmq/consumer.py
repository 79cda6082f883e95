"""Consumers: one queue, one channel, prefetch bounded, handlers run by a ``HandlerRunner``.

A consumer survives a dropped connection: aio-pika reopens its channel (qos, queue and bindings
restored) and the consumer subscribes again. Deliveries of the old channel were taken back by the
broker and come again; settling one of them is skipped (the broker no longer knows its tag).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from aio_pika.abc import AbstractRobustChannel
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

from pigeon import headers as h
from pigeon.message import Envelope, Failure, new_id
from pigeon.transports.base import Handler
from pigeon.transports.rabbitmq import wire
from pigeon.transports.rabbitmq.jobs import LADDER_HEADERS, JobStore
from pigeon.transports.rabbitmq.leaving import Leaving, made_or_rejected, refuse
from pigeon.transports.rabbitmq.publisher import is_connection_loss
from pigeon.transports.runner import HandlerRunner

log = logging.getLogger("pigeon")

SCREENING_TIMEOUT = 5.0
"""Seconds ``close`` waits for returned jobs being stored again (a confirmed publish each)."""


class RabbitDelivery:
    """A delivery from a RabbitMQ queue; see ``pigeon.transports.base.Delivery``.

    ``redeliver`` and ``dead_letter`` store the copy (confirmed) before acking the original: a
    crash in between leaves a duplicate, never a loss. If storing fails the original goes back to
    its queue at once.
    """

    __slots__ = (
        "_jobs",
        "_message",
        "_settled",
        "attempt",
        "counts",
        "envelope",
        "returns",
        "subject",
    )

    def __init__(
        self,
        message: DeliveredMessage,
        envelope: Envelope,
        subject: str,
        counts: wire.Counts,
        jobs: JobStore | None = None,
    ) -> None:
        self._message = message
        self.counts = counts
        self._jobs = jobs
        self._settled = False
        self.envelope = envelope
        self.subject = subject
        self.attempt = counts.attempt
        self.returns = counts.returns

    async def ack(self) -> None:
        await self._settle(requeue=None)

    async def redeliver(self, delay: float) -> None:
        if self._jobs is None:
            await self._settle(requeue=True)
            return
        next_counts = wire.Counts(self.counts.attempt + 1, self.counts.returns)
        await self._store_then_ack(
            self._jobs.retry(self.subject, self.envelope, next_counts, delay)
        )

    async def dead_letter(self, failure: Failure) -> None:
        if self._jobs is None:
            await self.ack()
            return
        letter = self.envelope.with_headers(failure.as_headers())
        await self._store_then_ack(self._jobs.bury(self.subject, letter))

    async def requeue(self) -> None:
        """Hand it back to its queue at once (``nack``, requeued), unrun: another consumer
        takes it."""
        await self._settle(requeue=True)

    async def _store_then_ack(self, storing: Awaitable[None]) -> None:
        try:
            await storing
        except BaseException:
            await self._settle(requeue=True)
            raise
        await self._settle(requeue=None)

    @property
    def stale(self) -> bool:
        """Whether its channel is gone: the broker took the message back and delivers it again."""
        return self._message.channel.is_closed

    async def _settle(self, *, requeue: bool | None) -> None:
        """Ack (``requeue=None``) or nack; skipped if the broker already took the message back."""
        if self._settled:
            return
        self._settled = True
        channel = self._message.channel
        tag = self._message.delivery_tag
        if channel.is_closed or tag is None:
            return
        try:
            if requeue is None:
                await channel.basic_ack(tag, wait=False)
            else:
                await channel.basic_nack(tag, requeue=requeue, wait=False)
        except Exception as exc:
            if not is_connection_loss(exc):
                raise
            log.debug("pigeon: settling %s skipped, its channel is gone", self.envelope.message_id)


MakeDelivery = Callable[[DeliveredMessage], RabbitDelivery]


class RabbitSubscription:
    """Consumes ``queue`` on its own channel, at most ``concurrency`` handlers at once.

    Only an rpc server's subscription (``leaving`` given) takes requests: a request that reached
    a work queue or a subscription's queue through the default exchange (it is named like it) is
    acked unrun and answered "not served", so that its caller raises ``NoResponders``; so is a
    request to the name of a server's queue that is not its subject (``serves``: the queue of
    ``orders.c++`` is ``orders.c++.<hash>``, a subject of its own).

    Deliveries are started in the order they arrive. ``close`` stops consuming at once, waits for
    handlers in flight, then closes the channel: the broker takes back every delivery left
    unsettled and delivers it again. An rpc server's, closing, starts no more requests: it hands
    back those it holds and those that still reach it (``Leaving``), so that no caller waits for
    its timeout.
    """

    def __init__(
        self,
        channel: AbstractRobustChannel,
        queue: str,
        handler: Handler,
        concurrency: int,
        make: MakeDelivery,
        jobs: JobStore | None = None,
        *,
        leaving: Leaving | None = None,
        held_at_close: Callable[[int], None] | None = None,
        serves: str | None = None,
    ) -> None:
        self.queue = queue
        self._serves = serves
        self._held_at_close = held_at_close
        self._refused = 0  # deliveries that came after the cancel, left unsettled
        self._requests = leaving is not None
        self._channel = channel
        self._handler = handler
        self._make = make
        self._jobs = jobs
        self._runner = HandlerRunner(concurrency, handler=handler, groups_keep=True)
        self._backlog: deque[RabbitDelivery] = deque()
        self._pump: asyncio.Task[None] | None = None
        self._tag = f"pigeon.{new_id()}"
        self._closing = False
        self._consuming = True
        """Until the broker confirmed the consumer's cancel: what it sends is still handled."""
        self._closed = asyncio.Event()
        self._restarts: set[asyncio.Task[None]] = set()
        self._screening: set[asyncio.Task[Any]] = set()
        self._leaving = leaving

    async def start(self) -> None:
        """Start consuming; again after each reopening of the channel."""
        await self._consume()
        self._channel.reopen_callbacks.add(self._reopened)

    async def close(self, timeout: float) -> None:
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        self._channel.reopen_callbacks.discard(self._reopened)
        try:
            if self._leaving is None:
                await self._cancel()
            else:
                await self._leave(self._leaving)
            self._consuming = False
            if self._pump is not None:
                self._pump.cancel()
                await asyncio.gather(self._pump, return_exceptions=True)
            self._count_dropped()
            await self._runner.drain(timeout)
            if self._screening:
                await asyncio.wait(set(self._screening), timeout=SCREENING_TIMEOUT)
            if self._leaving is not None:
                await self._leaving.stop_sweeping()
                await self._leaving.settled()
            with suppress(Exception):
                await asyncio.wait_for(self._channel.close(), 5)
        finally:
            self._closed.set()

    def _count_dropped(self) -> None:
        """Tell ``held_at_close`` how many deliveries no handler was started for."""
        if self._held_at_close is not None:
            self._held_at_close(len(self._backlog) + self._refused)

    async def _consume(self) -> None:
        underlay = await self._channel.get_underlay_channel()
        underlay.on_consumer_cancel_callbacks.add(self._cancelled_by_broker)
        await underlay.basic_consume(self.queue, self._on_message, consumer_tag=self._tag)

    def _cancelled_by_broker(self, frame: Basic.Cancel) -> None:
        """The queue was deleted under the consumer: consume again. If the queue is gone, that
        fails, aio-pika reopens the channel and declares the queue anew, and ``_reopened``
        consumes."""
        if frame.consumer_tag != self._tag or self._closing:
            return
        log.warning("pigeon: the broker cancelled the consumer of %r; consuming again", self.queue)
        task = asyncio.create_task(self._reopened())
        self._restarts.add(task)
        task.add_done_callback(self._restarts.discard)

    async def _reopened(self, *_: Any) -> None:
        if self._closing:
            return
        try:
            await self._consume()
        except Exception as exc:
            log.warning("pigeon: could not consume %r again yet: %r", self.queue, exc)

    async def _cancel(self) -> None:
        with suppress(Exception):
            underlay = await asyncio.wait_for(self._channel.get_underlay_channel(), 1)
            if not underlay.is_closed:
                await asyncio.wait_for(underlay.basic_cancel(self._tag), 5)

    async def _leave(self, leaving: Leaving) -> None:
        """Stop consuming an rpc server's queue, handing back the requests held unstarted: see
        ``Leaving``. Until it knows how, what arrives is held (the backlog, which no longer
        starts)."""
        try:
            underlay = await asyncio.wait_for(self._channel.get_underlay_channel(), 1)
        except Exception:
            underlay = None
        last = None if underlay is None else await leaving.is_last(underlay)
        if underlay is not None and last:
            await leaving.sweep(underlay)
            await leaving.decide("answer", self._take_backlog())
        await self._cancel()
        if underlay is not None and last:
            if not leaving.lasting:  # else swept until the drain ends: the queue stays
                await leaving.stop_sweeping()
        else:
            await leaving.decide("leave" if last is None else "requeue", self._take_backlog())

    def _take_backlog(self) -> list[RabbitDelivery]:
        held = list(self._backlog)
        self._backlog.clear()
        return held

    async def _on_message(self, message: DeliveredMessage) -> None:
        if self._leaving is not None and self._closing:
            await self._hand_back(self._leaving, message)
            return
        if self._closing and not self._consuming:
            self._refused += 1
            return  # left unsettled: the broker takes it back when the channel closes
        # Closing, a message the broker sent before it took the cancel is handled (it fits the
        # prefetch): handing it back unrun would count a delivery that called no handler.
        delivery = await made_or_rejected(self._make, message, self.queue)
        if delivery is None:
            return
        if not self._requests and _is_request(message):
            await _refuse_request(message, delivery.envelope, self.queue)
            return
        if self._serves is not None and not wire.bound(self._serves, delivery.subject):
            await _refuse_request(message, delivery.envelope, delivery.subject)
            return
        jobs = self._jobs
        if jobs and (jobs.must_screen(message) or h.DUE in delivery.envelope.headers):
            screened = await self._screen(delivery)
            if screened is None:
                return
            delivery = screened
        if not self._backlog and self._runner.free > 0:
            self._runner.start(self._handler(delivery))
            return
        self._backlog.append(delivery)
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._drain_backlog())

    async def _hand_back(self, leaving: Leaving, message: DeliveredMessage) -> None:
        """A request that reached the closing rpc server: held until ``leaving`` knows how to
        hand it back, then handed back."""
        delivery = await made_or_rejected(self._make, message, self.queue)
        if delivery is None:
            return
        if leaving.mode is None:
            self._backlog.append(delivery)
        else:
            await leaving.take(delivery)

    async def _screen(self, delivery: RabbitDelivery) -> RabbitDelivery | None:
        """Hold back a job that came early (``JobStore.hold_back``) and run ``JobStore.screen``
        on a returned one: the delivery a handler should get now, or ``None``. ``close`` waits
        for it before closing the channel, so that its ack is never sent on a closed channel."""
        assert self._jobs is not None
        task = asyncio.current_task()
        assert task is not None
        self._screening.add(task)
        jobs, envelope = self._jobs, delivery.envelope
        try:
            if await jobs.hold_back(self.queue, envelope, delivery.counts):
                await delivery.ack()
                return None
            counts: wire.Counts | None = delivery.counts
            if jobs.must_screen(delivery._message):
                counts = await jobs.screen(self.queue, envelope, delivery.counts)
            if counts is None:
                await delivery.ack()
                return None
            envelope = envelope.without_headers(LADDER_HEADERS)
            return RabbitDelivery(delivery._message, envelope, delivery.subject, counts, jobs)
        except Exception:
            log.exception("pigeon: could not requeue a returned job of %r", self.queue)
            await delivery._settle(requeue=True)
            return None
        finally:
            self._screening.discard(task)

    async def _drain_backlog(self) -> None:
        while self._backlog and not self._closing:
            await self._runner.wait_free()
            if self._closing:
                return
            delivery = self._backlog.popleft()
            if not delivery.stale:  # else it comes again on the reopened channel
                self._runner.start(self._handler(delivery))


def _is_request(message: DeliveredMessage) -> bool:
    """Whether a message is a request: its reply goes to direct reply-to, which only a caller
    waiting on its channel can use (no job or event is sent that way)."""
    reply_to = message.header.properties.reply_to
    return reply_to is not None and reply_to.startswith("amq.rabbitmq.reply-to")


async def _refuse_request(message: DeliveredMessage, request: Envelope, queue: str) -> None:
    """A request published to the default exchange reached a work queue or a subscription's
    queue of the same name: tell its caller nobody serves it (``NoResponders``), and drop it."""
    await refuse(message, request, queue)
    with suppress(Exception):
        if message.delivery_tag is not None and not message.channel.is_closed:
            await message.channel.basic_ack(message.delivery_tag, wait=False)


def delivery_maker(queue: str, jobs: JobStore | None = None) -> MakeDelivery:
    """How a consumer of ``queue`` turns messages into deliveries: for events and requests the
    subject is the routing key; for jobs (``jobs`` given) it is the work queue's name."""

    def make(message: DeliveredMessage) -> RabbitDelivery:
        subject = message.routing_key or queue
        counts = wire.counts_of(message)
        if message.redelivered and counts.attempt == 1:  # a classic queue counts no deliveries
            counts = wire.Counts(2, max(counts.returns, 1))  # at least one before, unsettled
        return RabbitDelivery(message, wire.envelope_of(message), subject, counts)

    def make_job(message: DeliveredMessage) -> RabbitDelivery:
        counts = wire.counts_of(message)
        return RabbitDelivery(message, wire.envelope_of(message), queue, counts, jobs)

    return make if jobs is None else make_job
