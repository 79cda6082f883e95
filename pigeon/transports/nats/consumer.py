"""JetStream pull consumers: a worker never holds more messages than it has free handler slots."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from nats import errors as nats_errors
from nats.aio.client import Client

from pigeon.failures import describe, one_line
from pigeon.message import Failure
from pigeon.transports.base import Handler
from pigeon.transports.nats import wire
from pigeon.transports.nats.errors import translated
from pigeon.transports.nats.recovery import CHECK_EVERY, Recovery
from pigeon.transports.runner import HandlerRunner

log = logging.getLogger("pigeon")

PULL_EXPIRES = 5.0
"""Seconds a pull request waits on the server for messages before it is renewed."""

OLD_SERVER_EXPIRES = 1.0
"""Seconds a pull request waits on a server before 2.10, which ``close`` waits out: such a
server, finding a redelivery due for a pull request whose inbox is gone, drops the request and
loses count of the message's deliveries (the next worker saw ``attempt`` 1 again)."""

_GRACE = 1.0
_ACK, _NAK, _TERM, _PROGRESS = b"+ACK", b"-NAK", b"+TERM", b"+WPI"

DeadLetterSink = Callable[["JetStreamDelivery", Failure], Awaitable[None]]
"""Stores a delivery with its failure in the dead-letter stream; returns once it is stored."""


class JetStreamDelivery:
    """A message of a pull consumer; see ``pigeon.transports.base.Delivery``.

    ``attempt`` is JetStream's own delivery count, read from the message's ack subject, so it
    survives restarts and counts every delivery: redeliveries after a nak included. JetStream
    does not tell a nak from a worker that died, so ``returns`` is ``None``.
    """

    __slots__ = ("_consumer", "attempt", "envelope", "reply", "returns", "stream_seq", "subject")

    def __init__(self, consumer: PullConsumer, msg: Any) -> None:
        self._consumer = consumer
        self.reply: str = msg.reply
        tokens = self.reply.split(".")
        base = 2 if len(tokens) == 9 else 4  # $JS.ACK.<stream>... or $JS.ACK.<domain>.<hash>...
        self.attempt = int(tokens[base + 2])
        self.returns = None
        self.stream_seq = int(tokens[base + 3])
        stored_at = int(tokens[base + 5]) / 1e9
        self.envelope = wire.incoming(msg.data, msg.headers, None, stored_at)
        self.subject: str = msg.subject[consumer.strip :]

    async def ack(self) -> None:
        await self._consumer.settle(self, _ACK)

    async def redeliver(self, delay: float) -> None:
        verb = b'-NAK {"delay":%d}' % int(delay * 1e9) if delay > 0 else _NAK
        await self._consumer.settle(self, verb)

    async def dead_letter(self, failure: Failure) -> None:
        await self._consumer.dead_letter(self, failure)


class PullConsumer:
    """Hands the messages of one durable pull consumer to ``handler``, ``concurrency`` at most.

    One pull request is open at a time, for no more messages than there are free slots, so no
    message waits in a local buffer while its ack timer runs. Messages in hand get in-progress
    acks, every third of ``ack_wait``, until settled. A dead-lettered message goes to ``sink``
    (the dead letters) or, without one, is logged and dropped. Closing naks every unsettled
    message, which JetStream then delivers again at once. It stops pulling before it stops
    handling: what arrives while the inbox is taken off the server is handled, not handed back.

    ``strip``: characters cut from the front of a message's subject to make ``Delivery.subject``
    (a work queue's subject prefix).
    """

    def __init__(
        self,
        client: Client,
        url: str,
        stream: str,
        consumer: str,
        handler: Handler,
        *,
        concurrency: int,
        ack_wait: float,
        strip: int = 0,
        sink: DeadLetterSink | None = None,
        recovery: Recovery | None = None,
    ) -> None:
        self.stream = stream
        self._consumer = consumer
        self._recovery = recovery
        self._check_now = asyncio.Event()
        self.strip = strip
        self._client = client
        self._url = url
        self._handler = handler
        self._sink = sink
        self._progress_every = ack_wait / 3
        self._next = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._inbox = client.new_inbox()
        self._runner = HandlerRunner(concurrency, handler=handler)
        self._unsettled: dict[str, JetStreamDelivery] = {}
        self._backlog: deque[JetStreamDelivery] = deque()
        self._wake = asyncio.Event()
        self._remaining = 0
        self._request_ends = 0.0
        self._pause_until = 0.0
        self._closed = False
        self._receiving = True
        """Until ``close`` has taken the inbox off the server: what comes is still handled."""
        self._tasks: list[asyncio.Task[None]] = []
        self._subscription: Any = None

    async def start(self) -> None:
        """Subscribe to the reply inbox and start pulling."""
        with translated(self._url, f"consuming {self.stream}"):
            self._subscription = await self._client.subscribe(self._inbox, cb=self._received)
        self._tasks = [asyncio.create_task(self._pump()), asyncio.create_task(self._keep_alive())]
        if self._recovery is not None:
            self._tasks.append(asyncio.create_task(self._watch(self._recovery)))

    async def move_to(self, client: Client) -> None:
        """The client closed for good and ``client`` took its place: pull through it."""
        if self._closed:
            return
        self._client = client
        self._inbox = client.new_inbox()
        with translated(self._url, f"consuming {self.stream}"):
            self._subscription = await client.subscribe(self._inbox, cb=self._received)
        self.reset()

    def reset(self) -> None:
        """Forget the open pull request (after a reconnect it is gone) and pull again."""
        self._remaining = 0
        self._wake.set()

    async def close(self, timeout: float) -> None:
        if self._closed:
            return
        self._closed = True
        pump, keep_alive, *watch = self._tasks or (None, None)
        for task in (pump, *watch):
            await _cancel(task)
        await self._wait_out_pull()
        await self._stop_receiving()
        self._receiving = False
        await self._runner.drain(timeout)
        await _cancel(keep_alive)  # only now: a job whose handler runs stays this worker's
        self._backlog.clear()
        unsettled, self._unsettled = self._unsettled, {}
        for reply in unsettled:
            await self._send(reply, _NAK)

    async def _wait_out_pull(self) -> None:
        """On a server before 2.10, let the open pull request end (what it brings is handled):
        see ``OLD_SERVER_EXPIRES``. Later servers check the inbox's interest first."""
        if self._expires() == PULL_EXPIRES:
            return
        loop = asyncio.get_running_loop()
        ends = self._request_ends - _GRACE
        while self._remaining > 0 and loop.time() < ends and self._client.is_connected:
            await self._wait_wake(ends - loop.time())

    def _expires(self) -> float:
        version = self._client.connected_server_version
        return PULL_EXPIRES if (version.major, version.minor) >= (2, 10) else OLD_SERVER_EXPIRES

    async def _stop_receiving(self) -> None:
        """Take the inbox off the server; what it sent before that is nak'd as it arrives."""
        try:
            async with asyncio.timeout(2.0):
                await self._subscription.drain()
        except (nats_errors.Error, TimeoutError):  # the connection is down: just forget it
            with contextlib.suppress(nats_errors.Error):
                await self._subscription.unsubscribe()

    async def settle(self, delivery: JetStreamDelivery, verb: bytes) -> None:
        """Ack, nak or terminate ``delivery``; settling it again is a no-op."""
        if self._unsettled.pop(delivery.reply, None) is None:
            return
        with translated(self._url, "acknowledging a message"):
            await self._client.publish(delivery.reply, verb)

    async def dead_letter(self, delivery: JetStreamDelivery, failure: Failure) -> None:
        """Store ``delivery`` with ``failure`` as a dead letter, then terminate the original."""
        if self._sink is None:
            log.error(
                "pigeon: dropped event of %s message_id=%s: %s: %s",
                self.stream,
                one_line(delivery.envelope.message_id),
                failure.type,
                one_line(failure.message),
            )
        else:
            try:
                await self._sink(delivery, failure)
            except BaseException:
                await self.settle(delivery, b'-NAK {"delay":%d}' % int(5e9))
                raise
        await self.settle(delivery, _TERM)

    # -- receiving -------------------------------------------------------------------------

    async def _received(self, msg: Any) -> None:
        if not msg.reply:
            self._status(msg.headers or {})
            return
        self._remaining -= 1
        if self._remaining <= 0:
            self._wake.set()
        if self._closed and not self._receiving:  # cannot be handled now: back it goes
            await self._send(msg.reply, _NAK)
            return
        # Closing, a message the server sent before it knew we stopped is handled like any
        # other: it was pulled for a free slot, and handing it back unrun would count a delivery
        # that called no handler (``attempt`` would skip one).
        delivery = JetStreamDelivery(self, msg)
        self._unsettled[delivery.reply] = delivery
        if self._runner.free > 0 and not self._backlog:
            self._runner.start(self._handler(delivery))
        else:  # more than asked for (a pull request outlived a reconnect): hold it until free
            self._backlog.append(delivery)
            self._wake.set()

    def _status(self, headers: dict[str, str]) -> None:
        status = headers.get("Status")
        if status == "100":  # idle heartbeat
            return
        if status not in ("404", "408"):  # 409 and 503: a leader election, a deleted consumer
            description = headers.get("Description", "")
            log.info("pigeon: pulling from %s: %s %s", self.stream, status, description)
            if "Leadership Change" not in description:
                self._pause_until = asyncio.get_running_loop().time() + 0.5
            if status == "503":  # no consumer answers: is it gone?
                self._check_now.set()
        self._remaining = 0
        self._wake.set()

    # -- pulling ---------------------------------------------------------------------------

    async def _pump(self) -> None:
        while not self._closed:
            try:
                await self._pump_once()
            except Exception:  # a bug or a broken connection must not stop the consumer for good
                log.exception("pigeon: pulling from %s failed; retrying in 1s", self.stream)
                await asyncio.sleep(1.0)

    async def _pump_once(self) -> None:
        loop = asyncio.get_running_loop()
        runner = self._runner
        while not self._closed:
            if self._backlog:
                await runner.wait_free()
                while self._backlog and runner.free > 0:
                    runner.start(self._handler(self._backlog.popleft()))
                continue
            now = loop.time()
            waiting = self._remaining > 0 and now < self._request_ends
            if waiting or now < self._pause_until or not self._client.is_connected:
                until = self._request_ends if waiting else max(self._pause_until, now + 0.25)
                await self._wait_wake(until - now)
                continue
            await runner.wait_free()
            await self._pull(runner.free)

    async def _wait_wake(self, timeout: float) -> None:
        self._wake.clear()
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the cancel of close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(timeout, 0.01)):
                await self._wake.wait()

    async def _pull(self, count: int) -> None:
        self._remaining = count
        expires = self._expires()
        self._request_ends = asyncio.get_running_loop().time() + expires + _GRACE
        request = b'{"batch":%d,"expires":%d}' % (count, int(expires * 1e9))
        try:
            await self._client.publish(self._next, request, reply=self._inbox)
        except nats_errors.Error as exc:
            log.warning("pigeon: cannot pull from %s: %s", self.stream, describe(exc))
            self._remaining = 0
            self._pause_until = asyncio.get_running_loop().time() + 1.0

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(self._progress_every)
            for reply in list(self._unsettled):
                await self._send(reply, _PROGRESS)

    async def _watch(self, recovery: Recovery) -> None:
        """Declare the stream and consumer again whenever they are found gone (``recovery``)."""
        while True:
            self._check_now.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CHECK_EVERY):
                    await self._check_now.wait()
            if not self._client.is_connected:
                continue
            pause = 1.0  # each pull may get a 503: ask at most once a second
            try:
                if await recovery.missing(self.stream, self._consumer):
                    await self._declare_again(recovery)
            except Exception as exc:  # pulling goes on meanwhile; the next check tries again
                log.warning(
                    "pigeon: checking consumer %r of %s failed, again in %gs: %s",
                    self._consumer,
                    self.stream,
                    CHECK_EVERY,
                    exc,
                )
                pause = CHECK_EVERY
            await asyncio.sleep(pause)

    async def _declare_again(self, recovery: Recovery) -> None:
        gone = self.stream
        self.stream = await recovery.redeclare()
        self._next = f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self._consumer}"
        log.warning(
            "pigeon: consumer %r of stream %r was gone (a server that lost its store, or deleted "
            "by hand): declared again; what was published while it was gone is not kept",
            self._consumer,
            gone,
        )
        self.reset()

    async def _send(self, reply: str, verb: bytes) -> None:
        try:
            await self._client.publish(reply, verb)
        except nats_errors.Error as exc:
            log.warning(
                "pigeon: could not send %s to %s: %s", verb.decode(), self.stream, describe(exc)
            )


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
