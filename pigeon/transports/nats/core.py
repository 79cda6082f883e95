"""Core NATS subscriptions: events (optionally in a queue group) and RPC requests.

Core NATS delivers at most once and keeps nothing: settling a delivery is a no-op, and a message
whose handler is cut off by ``close`` is gone (use ``durable=`` or a work queue to keep it). A
closing rpc server hands the requests it has not started on to another server (``Handover``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections import deque
from typing import Any

from nats import errors as nats_errors
from nats.aio.client import Client
from nats.aio.subscription import DEFAULT_SUB_PENDING_BYTES_LIMIT as PENDING_BYTES
from nats.aio.subscription import DEFAULT_SUB_PENDING_MSGS_LIMIT as PENDING_MSGS

from pigeon.message import Failure
from pigeon.transports.base import Handler
from pigeon.transports.nats import wire
from pigeon.transports.nats.buffered import EventBuffer, is_request
from pigeon.transports.nats.client import PigeonClient, registered
from pigeon.transports.nats.errors import translated
from pigeon.transports.nats.handover import Handover
from pigeon.transports.nats.topology import DEAD_LETTER_SUBJECTS, DELAYED_SUBJECTS, QUEUE_SUBJECTS
from pigeon.transports.replies import not_served
from pigeon.transports.runner import HandlerRunner, goes_on_after_cancel, started_in
from pigeon.transports.runner import withdraw_own_cancel as withdraw_cancel
from pigeon.transports.slow import SlowConsumers

log = logging.getLogger("pigeon")

INTERNAL = (
    "_PIGEON.",
    QUEUE_SUBJECTS,
    DEAD_LETTER_SUBJECTS,
    DELAYED_SUBJECTS,
    "_INBOX.",
    "$JS.",
    "$SRV.",
)
"""Subjects of pigeon's requests, jobs and replies and of the JetStream and service APIs: never
events. No handler may name them (``subjects.RESERVED``), but a pattern may still cover them."""

COVERING = ("*", ">", "pigeon")
"""First tokens of a subscription that may cover an ``INTERNAL`` subject (``>``, ``*.created``,
``pigeon.>``): its messages are screened and internal ones skipped. ``pigeon.`` itself is not
reserved (users may name subjects ``pigeon.<...>``), only ``pigeon.queue.`` and its siblings."""


def waiting_room(max_pending: int, concurrency: int) -> int:
    """nats-py's ``pending_msgs_limit`` that keeps a subscription to ``max_pending`` messages in
    hand: its buffer holds what waits beyond the handlers' ``concurrency`` and (above 1) the one
    message ``_received`` holds while it waits for a free slot. At least 1: 0 is no limit."""
    held_by_callback = 1 if concurrency > 1 else 0
    return max(1, max_pending - concurrency - held_by_callback)


class CoreDelivery:
    """A core NATS message; ``attempt`` is always 1, ``returns`` 0, and settling it does nothing.
    ``strip``: characters cut from the front of its subject (pigeon's request prefix)."""

    __slots__ = ("envelope", "subject")

    attempt = 1
    returns = 0

    def __init__(self, msg: Any, strip: int = 0) -> None:
        self.envelope = wire.incoming(msg.data, msg.headers, msg.reply, time.time())
        self.subject: str = msg.subject[strip:] if strip else msg.subject

    def ack(self) -> None:
        return None  # done at the call: a core message is never delivered again

    async def redeliver(self, delay: float) -> None:
        return None

    async def dead_letter(self, failure: Failure) -> None:
        return None


class CoreSubscription:
    """A core NATS subscription calling ``handler`` for each message, ``concurrency`` at most.

    With ``concurrency=1`` messages are handled one after the other, in the order they came, in
    one delivery task (no task per message: this is pub-sub's hot path). Otherwise each handler
    call is a task, started as a slot frees. An event subscription on a ``PigeonClient`` holds its
    events in an ``EventBuffer`` (taken straight from the connection's reader; ``max_pending``
    exact); else, and on nats-py's own ``Client``, nats-py's queue and task hold them, and wait
    for a free slot before handing over the next message.

    ``requests``: an rpc server's subscription, which takes only messages with a reply subject (a
    publish on its subject is no request); else an event subscription, which refuses a pigeon
    request that reached it (it carries ``x-pigeon-deadline``) with a ``not_served`` reply, so
    that its caller raises ``NoResponders``. ``strip``: see ``CoreDelivery``. ``drops`` counts
    the messages it closes holding (``declared``: its subject as the handler declared it), and
    an ``EventBuffer``'s drops; an rpc server's are handed on instead (on a ``PigeonClient``).
    ``max_pending``: the most messages it holds, those being handled included (else nats-py's
    ``pending_msgs_limit`` of ``start``'s limits, waiting ones only).
    """

    def __init__(
        self,
        client: Client,
        url: str,
        handler: Handler,
        concurrency: int,
        *,
        requests: bool = False,
        strip: int = 0,
        drops: SlowConsumers | None = None,
        max_pending: int | None = None,
    ) -> None:
        self._requests = requests
        self._concurrency, self._max_pending = concurrency, max_pending
        self._buffer: EventBuffer | None = None
        self._drops = drops or SlowConsumers(url)
        self._refused = 0  # messages that reached us after close began
        self._held: Any = None  # the message _received holds until a slot frees
        self._strip = strip
        self._client, self._url, self._handler = client, url, handler
        self._started = contextvars.copy_context()  # after the lifespan, unlike the reader's
        self._runner = HandlerRunner(
            concurrency, self._next_request if requests else None, self._started, handler=handler
        )
        self._waiting, self._waiting_bytes = deque[Any](), 0  # taken, waiting for a slot
        self._bound = (PENDING_MSGS, PENDING_BYTES)  # waiting requests, their payload bytes
        self._inline = concurrency == 1
        self._current: asyncio.Task[Any] | None = None  # running a handler inline
        self._delivering: asyncio.Task[Any] | None = None  # nats-py's task calling us inline
        self._context = contextvars.Context()  # _delivering's, before any handler ran in it
        self._isolating = False  # a handler changed it: the next run in copies of _context
        self._finished: asyncio.Future[None] | None = None  # what close() waits on
        self._subscription: Any = None
        self._subject, self._queue = "", ""
        self._limits: dict[str, int] | None = None
        self._covers_internal = self._screen = False
        self._closed = False

    @property
    def declared(self) -> str:
        """The subject as its handler declared it (without pigeon's request prefix)."""
        return self._subject[self._strip :]

    def owns(self, subscription: Any) -> bool:
        """Whether ``subscription`` (nats-py's) is this one's."""
        return subscription is self._subscription

    async def start(self, subject: str, queue: str, limits: dict[str, int] | None = None) -> None:
        """Subscribe (``limits``: nats-py's ``pending_msgs_limit`` / ``pending_bytes_limit``);
        returns once the server has registered the subscription."""
        callback = self._received_inline if self._inline else self._received
        self._subject, self._queue, self._limits = subject, queue, limits
        self._covers_internal = subject.split(".")[0] in COVERING
        self._screen = self._requests or self._covers_internal
        """Whether every message needs ``_crossing``; on an event subscription to a plain subject
        (pub-sub's hot path) only one with a reply subject does."""
        msgs, size = self._bound = _pending_limits(limits or {})
        if self._buffer is None and not self._requests and isinstance(self._client, PigeonClient):
            self._buffer = self._new_buffer(msgs, size)
        if self._max_pending is not None:
            msgs = waiting_room(self._max_pending, self._concurrency)
        with translated(self._url, f"subscribing to {subject!r}"):
            self._subscription = await self._client.subscribe(
                subject,
                queue=queue,
                cb=callback,
                pending_msgs_limit=msgs,
                pending_bytes_limit=size,
            )
            await registered(self._client)
        if isinstance(self._client, PigeonClient):
            if self._buffer is not None:
                self._client.take_directly(self._subscription, self._buffer)
            elif self._requests and not self._inline:
                self._client.take_directly(self._subscription, self)

    def _new_buffer(self, pending_msgs: int, pending_bytes: int) -> EventBuffer:
        return EventBuffer(
            self._call,
            self._concurrency,
            max_pending=self._max_pending,
            pending_msgs=pending_msgs,
            pending_bytes=pending_bytes,
            crossing=self._crossing,
            skip=_internal if self._covers_internal else None,
            dropped=lambda: self._drops.dropped_one(self.declared),
            context=self._started,
            handler=self._handler,
        )

    def _call(self, msg: Any) -> Any:
        return self._handler(CoreDelivery(msg, self._strip))

    async def move_to(self, client: Client) -> None:
        """The client closed for good and ``client`` took its place: subscribe again on it."""
        if self._closed:
            return
        self._client = client
        self._delivering = None
        self._held = None  # the old client's delivery task, cancelled, held it
        await self.start(self._subject, self._queue, self._limits)

    async def close(self, timeout: float) -> None:
        """Stop taking messages; an rpc server first hands on those it holds unstarted (at once,
        not after its handlers); let the handlers finish (up to ``timeout`` seconds), cancel the
        rest, and count what is dropped."""
        if self._closed:
            return
        self._closed = True
        if self._buffer is not None:
            await self._close_buffered(self._buffer, timeout)
            return
        handing_on = self._requests and self._can_hand_on()
        if handing_on:
            self._refused += await self._hand_on()
        if self._current is not None:
            await self._finish_inline(timeout, stop=not handing_on)
        if isinstance(self._client, PigeonClient) and self._subscription is not None:
            self._client.stop_taking(self._subscription)
        with contextlib.suppress(nats_errors.Error):
            await self._subscription.unsubscribe()  # nats-py discards what it still buffers
        left = self._subscription.pending_msgs if self._subscription is not None else 0
        left += self._refused + (self._held is not None) + len(self._waiting)
        self._waiting.clear()
        why = "core NATS keeps nothing; use durable= to keep them"
        self._drops.dropped_at_close(self.declared, left, why)
        await self._runner.drain(timeout)

    async def _close_buffered(self, buffer: EventBuffer, timeout: float) -> None:
        """Stop taking events, let the handlers finish (up to ``timeout``), count the rest."""
        subscription = self._subscription
        buffer.stop()
        left = 0
        if subscription is not None:
            if isinstance(self._client, PigeonClient):  # always: it made the buffer
                self._client.stop_taking(subscription)
            with contextlib.suppress(nats_errors.Error):
                await subscription.unsubscribe()
            left = subscription.pending_msgs
        left += self._refused + await buffer.close(timeout)
        why = "core NATS keeps nothing; use durable= to keep them"
        self._drops.dropped_at_close(self.declared, left, why)

    def _can_hand_on(self) -> bool:
        """Whether ``_hand_on`` can: on a connected ``PigeonClient`` (it uses nats-py's queue)."""
        client, subscription = self._client, self._subscription
        return isinstance(client, PigeonClient) and client.is_connected and subscription is not None

    async def _hand_on(self) -> int:
        """An rpc server's requests not started go on to another server of the subject (see
        ``Handover``): those in nats-py's queue, the one ``_received`` holds, and those still on
        their way. Returns how many could not be handed on (they are dropped)."""
        client, subscription = self._client, self._subscription
        assert isinstance(client, PigeonClient)
        held = client.take_held(subscription)
        if self._held is not None:
            held.insert(0, self._held)
            self._held = None
        held[:0] = self._waiting
        self._waiting.clear()
        return await Handover(client, held).run(subscription)

    async def _finish_inline(self, timeout: float, *, stop: bool) -> None:
        """Let the handler in flight finish (up to ``timeout``), then cancel it. ``stop``: take
        the subscription off the server first (else ``_hand_on`` did).

        ``unsubscribe()`` would cancel it at once: nats-py runs it in its delivery task. Asking the
        server to stop after one more message takes the subscription off the server now (that one
        message, if any, is dropped) and leaves the handler running.
        """
        finished = self._finished = asyncio.get_running_loop().create_future()
        subscription = self._subscription
        if stop:
            with contextlib.suppress(nats_errors.Error):
                await subscription.unsubscribe(limit=subscription.delivered + 1)
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(finished)
        except TimeoutError:
            if self._current is not None:
                self._current.cancel()
            await finished

    async def _crossing(self, msg: Any) -> bool:
        """Whether ``msg`` belongs to another pattern: a publish reaching an rpc server is
        dropped; pigeon's internal subjects reaching a subscription that covers them are skipped; a
        pigeon request reaching a subscriber is answered ``not_served``."""
        if self._requests:
            if msg.reply:
                return False
            log.debug("pigeon: dropped a publish on rpc subject %r", msg.subject)
            return True
        if self._covers_internal and msg.subject.startswith(INTERNAL):
            return True
        if not is_request(msg):
            return False  # a publish with a reply subject of someone else's: an event
        request = wire.received(msg)
        reply = not_served(request, msg.subject)
        with contextlib.suppress(nats_errors.Error):
            await self._client.publish(msg.reply, reply.body, headers=wire.outgoing(reply))
        return True

    async def _received_inline(self, msg: Any) -> None:
        if self._closed:
            self._refused += 1
            return
        if (self._screen or msg.reply) and await self._crossing(msg):
            return
        current = self._current = self._delivering or asyncio.current_task()
        if self._delivering is None:  # the subscription's one delivery task: asked once
            self._delivering, self._context = current, contextvars.copy_context()
            # made elsewhere (a new client's, from the task that connected it): not the App's
            self._isolating = self._context != self._started
            if self._isolating:
                self._context = self._started
        try:  # each call sees the task's first context, as in a task of its own
            call = self._handler(CoreDelivery(msg, self._strip))
            if self._isolating:
                rest = started_in(self._context.copy(), call)
                if rest is not None:
                    await rest
            else:
                await call
        except asyncio.CancelledError:
            if not goes_on_after_cancel(self._closed):
                raise
        finally:
            self._isolating = self._isolating or contextvars.copy_context() != self._context
            self._current = None
            if self._finished is not None and not self._finished.done():
                self._finished.set_result(None)
        if current is not None and current.cancelling() and not self._closed:
            await withdraw_cancel(current)  # it cancelled itself, then returned

    async def _received(self, msg: Any) -> None:
        if self._closed:
            self._refused += 1
            return
        if (self._screen or msg.reply) and await self._crossing(msg):
            return
        runner = self._runner
        if runner.free <= 0:
            self._held = msg  # if close comes first, it hands it on or counts it as dropped
            await runner.wait_free()  # meanwhile no request is taken directly (``ready``)
            if self._closed:
                return
            self._held = None
        runner.start(self._handler(CoreDelivery(msg, self._strip)))

    def ready(self) -> bool:
        """Whether a request may be handed to ``take`` now (see ``PigeonClient.take_directly``):
        none waits in nats-py's delivery task for a slot."""
        return not self._closed and self._held is None

    def take(self, msg: Any) -> None:
        """Start handling ``msg``, a message to an rpc server, given by the connection's reading
        task instead of nats-py's delivery task (one trip through the event loop fewer), or, with
        every slot taken, hold it for the first slot that frees (``_next_request``). Over
        nats-py's pending limits it is dropped, as nats-py drops it (a slow consumer)."""
        if not msg.reply:
            log.debug("pigeon: dropped a publish on rpc subject %r", msg.subject)
            return
        if self._runner.free > 0:  # then none waits: a freed slot takes the waiting first
            self._runner.start(self._handler(CoreDelivery(msg, self._strip)))
            return
        msgs, size = self._bound
        if len(self._waiting) >= msgs or self._waiting_bytes + len(msg.data) > size:
            self._drops.dropped_one(self.declared)
            return
        self._waiting.append(msg)
        self._waiting_bytes += len(msg.data)

    def _next_request(self) -> Any:
        """The call of the oldest request waiting for a slot (run by the slot that freed), or
        ``None``: none waits, or close hands them on."""
        if self._closed or not self._waiting:
            return None
        msg = self._waiting.popleft()
        self._waiting_bytes -= len(msg.data)
        return self._handler(CoreDelivery(msg, self._strip))


def _pending_limits(limits: dict[str, int]) -> tuple[int, int]:
    """The messages and bytes nats-py's ``limits`` let a subscription hold waiting."""
    msgs = limits.get("pending_msgs_limit", PENDING_MSGS)
    return msgs, limits.get("pending_bytes_limit", PENDING_BYTES)


def _internal(msg: Any) -> bool:
    """Whether ``msg`` is on one of pigeon's internal subjects (never an event)."""
    return bool(msg.subject.startswith(INTERNAL))
