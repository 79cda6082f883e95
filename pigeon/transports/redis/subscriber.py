"""Plain Redis subscribers: the Pub/Sub messages of one channel or pattern, and the deliveries
that events, groups and requests share (nothing to settle).

Redis Pub/Sub keeps nothing: the server pushes each message to the connection at once (bounded
only by its ``client-output-buffer-limit pubsub``, which disconnects a client that reads too
slowly). ``Channels`` reads every message as it comes, so a slow subscriber's events wait in
pigeon's own buffer, and those over its limit are dropped and counted.
"""

from __future__ import annotations

import asyncio
import logging

from pigeon import subjects
from pigeon.failures import one_line
from pigeon.message import Envelope
from pigeon.transports.base import Handler
from pigeon.transports.redis import wire
from pigeon.transports.redis.channels import Channels
from pigeon.transports.redis.tasks import cancel_all, watched
from pigeon.transports.redis.topology import Keys, is_wildcard
from pigeon.transports.runner import HandlerRunner
from pigeon.transports.slow import SlowConsumers

log = logging.getLogger("pigeon")

PENDING_LIMIT = 65_536
"""Events a plain subscriber holds (waiting or being handled) unless its ``max_pending`` says
otherwise; new ones beyond it are dropped (a slow consumer, counted and logged)."""


class EventDelivery:
    """An event, request or group delivery: nothing to settle (see ``Delivery``)."""

    __slots__ = ("attempt", "envelope", "returns", "subject")

    def __init__(self, envelope: Envelope, subject: str) -> None:
        self.envelope = envelope
        self.subject = subject
        self.attempt = 1
        self.returns = 0

    def ack(self) -> None:
        return None  # done at the call: a Pub/Sub message is never delivered again

    async def redeliver(self, delay: float) -> None:
        return None

    async def dead_letter(self, failure: object) -> None:
        return None


class ChannelSubscription:
    """A plain subscriber through a runner of ``concurrency``, holding at most ``max_pending``
    events (those being handled included); ``drops`` counts those it drops, over the limit
    or held when it closes.
    """

    def __init__(
        self,
        channels: Channels,
        keys: Keys,
        subject: str,
        handler: Handler,
        concurrency: int,
        *,
        max_pending: int | None,
        drops: SlowConsumers,
    ) -> None:
        self._channels = channels
        self._subject = subject
        self._wildcard = is_wildcard(subject)
        self._name = keys.event_glob(subject) if self._wildcard else keys.event_channel(subject)
        self._keys, self._handler = keys, handler
        self._concurrency = concurrency
        self._runner = HandlerRunner(concurrency, handler=handler)
        self._max_pending = PENDING_LIMIT if max_pending is None else max_pending
        self._drops = drops
        self._queue: asyncio.Queue[tuple[bytes, bytes]] = asyncio.Queue()
        self._pump: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        await self._channels.subscribe(self._name, self._received, pattern=self._wildcard)
        self._pump = watched(self._run(), f"subscriber of {self._subject!r}")

    async def close(self, timeout: float) -> None:
        if self._closed:
            return
        self._closed = True
        await self._channels.unsubscribe(self._name, self._received, pattern=self._wildcard)
        if self._pump is not None:
            await cancel_all([self._pump])
        held = 0
        while not self._queue.empty():
            channel, _ = self._queue.get_nowait()
            held += self._matches(channel)
        why = "Redis Pub/Sub keeps nothing; use durable= to keep them"
        self._drops.dropped_at_close(self._subject, held, why)
        await self._runner.drain(timeout)

    def _received(self, channel: bytes, payload: bytes) -> None:
        being_handled = self._concurrency - self._runner.free
        if self._queue.qsize() + being_handled >= self._max_pending:
            self._drops.dropped_one(self._subject)
            return
        self._queue.put_nowait((channel, payload))

    async def _run(self) -> None:
        runner = self._runner
        while True:
            await runner.wait_free()  # an event waits in the queue, where it is counted
            channel, payload = await self._queue.get()
            try:
                self._start(channel, payload)
            except Exception:  # a bug must not end the subscription: this one event is lost
                log.exception("pigeon: dropped an event of %s", one_line(self._subject))

    def _start(self, channel: bytes, payload: bytes) -> None:
        """Start handling the event ``payload`` received on ``channel``, if it is ours."""
        if self._matches(channel):
            subject = self._keys.subject_of(channel)
            self._runner.start(self._handler(EventDelivery(wire.unpack(payload), subject)))

    def _matches(self, channel: bytes) -> bool:
        """Whether a message on ``channel`` is one of ours (a glob may match more)."""
        return not self._wildcard or subjects.matches(self._subject, self._keys.subject_of(channel))
