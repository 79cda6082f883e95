"""Consumers of acknowledged streams (work queues and durable subscriptions): delivery counting,
redelivery of a dead worker's jobs and delayed redelivery (the work pool applies the limit).

One consumer of a stream's consumer group per subscription. It fetches no more entries than it
has free handler slots (the ``FETCH`` script, one round trip: promote due delayed jobs, reclaim
entries idle for ``claim_idle`` seconds with ``XAUTOCLAIM``, read new ones), and blocks in
``XREADGROUP`` when there are none. ``attempt`` is the entry's delivery count from ``XPENDING``
plus the deliveries of its earlier copies (a delayed redelivery is a new entry). Entries in hand
are claimed again every third of ``claim_idle`` (``JUSTID``: the count does not move), so a live
worker's slow job is never taken from it, nor a closing worker's while its handler (or a sync
handler's thread) still runs. Once they have all ended, a closing worker hands the entries they
left unsettled to ``RETURNED`` as long idle, so the next fetch of any worker takes them at once,
count + 1.
A work queue's consumer also beats every third of ``claim_idle`` in the queue's set of live
consumers (``heartbeat``), counted by ``backlog``: Redis 7.0 creates a consumer only when a read
returns entries and does not refresh its idle time while it blocks, so the group cannot tell.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.typing import EncodableT

from pigeon.failures import describe, one_line
from pigeon.message import Envelope, Failure
from pigeon.transports.base import Handler
from pigeon.transports.redis.errors import CLIENT_ERRORS, is_missing_group, translated
from pigeon.transports.redis.scripts import Scripts
from pigeon.transports.redis.tasks import cancel_all, watched
from pigeon.transports.redis.topology import RETURNED
from pigeon.transports.runner import HandlerRunner

log = logging.getLogger("pigeon")

BLOCK = 1.0
"""Longest wait, in seconds, of a blocking read; reclaims and delayed jobs are looked at between."""

GIVEN_BACK_IDLE_MS = 365 * 86_400_000
"""The idle time given to entries a closing consumer hands back: longer than any ``claim_idle``."""


def reserve_connections(redis: Redis, count: int) -> None:
    """Grow the client's pool by ``count`` connections (shrink it, when negative).

    A blocking read holds a pooled connection for up to ``BLOCK`` seconds; each reader adds one
    to the pool while it runs, so ``max_connections`` stays for commands however many readers
    an App has (an App with more readers than connections would wait for a free one forever).
    """
    redis.connection_pool.max_connections += count


Parsed = tuple[Envelope, str, int, int]
"""An entry's envelope, subject, and the deliveries and returns of its earlier copies."""

Parse = Callable[[bytes, dict[bytes, bytes]], Parsed]
DeadLetterSink = Callable[["StreamDelivery", Failure], Awaitable[None]]
"""Stores a delivery with its failure as a dead letter and acks it, atomically."""


class StreamDelivery:
    """An entry of an acknowledged stream; see ``pigeon.transports.base.Delivery``."""

    __slots__ = ("_consumer", "attempt", "entry_id", "envelope", "returns", "subject")

    def __init__(
        self, consumer: StreamConsumer, entry_id: bytes, parsed: Parsed, count: int
    ) -> None:
        self._consumer = consumer
        self.entry_id = entry_id
        self.envelope, self.subject, deliveries, returns = parsed
        self.attempt = deliveries + count
        self.returns = returns + count - 1

    async def ack(self) -> None:
        await self._consumer.ack(self)

    async def redeliver(self, delay: float) -> None:
        await self._consumer.redeliver(self, delay)

    async def dead_letter(self, failure: Failure) -> None:
        await self._consumer.dead_letter(self, failure)


class StreamConsumer:
    """Hands the entries of ``stream`` (group ``group``) to ``handler``, ``concurrency`` at most.

    A dead-lettered entry goes to ``sink``; without a sink it is logged and dropped.
    ``redeclare`` makes the stream and group again if someone deleted them. ``dead_letters``
    (a work queue's dead-letter stream, and ``queue`` its name) is where a delayed job that
    cannot go back onto the stream goes; without it, such a job is dropped.
    """

    def __init__(
        self,
        redis: Redis,
        scripts: Scripts,
        url: str,
        *,
        stream: str,
        group: str,
        consumer: str,
        handler: Handler,
        concurrency: int,
        claim_idle: float,
        parse: Parse,
        sink: DeadLetterSink | None,
        redeclare: Callable[[], Awaitable[None]],
        delayed: str,
        dead_letters: str | None = None,
        queue: str = "",
        heartbeat: str | None = None,
    ) -> None:
        self._redis, self._scripts, self._url = redis, scripts, url
        self._keys = [stream, delayed] + ([dead_letters] if dead_letters else [])
        self._queue = queue or stream
        self._heartbeat = heartbeat
        self._group, self._name = group, consumer
        self._handler, self._parse, self._sink = handler, parse, sink
        self._redeclare = redeclare
        self._claim_idle_ms = max(1, int(claim_idle * 1000))
        self._claim_every = min(BLOCK, claim_idle / 3)
        self._runner = HandlerRunner(concurrency, handler=handler)
        self._unsettled: dict[bytes, StreamDelivery] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        self._promotions: set[asyncio.Task[None]] = set()
        self._cursor = b"0-0"
        self._next_claim = 0.0
        self._closed = False
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def stream(self) -> str:
        return self._keys[0]

    def start(self) -> None:
        """Start fetching (the stream and group exist)."""
        reserve_connections(self._redis, 1)
        what = f"the consumer of {self.stream}"
        self._tasks = [watched(self._pump(), what), watched(self._keep_alive(), what)]

    async def close(self, timeout: float) -> None:
        if self._closed:
            return
        self._closed = True
        await cancel_all(self._tasks[:1])  # the pump: fetch no more
        for timer in self._timers:
            timer.cancel()
        await asyncio.gather(*self._promotions, return_exceptions=True)
        await self._runner.drain(timeout)  # claims are renewed until every handler has ended
        await cancel_all(self._tasks[1:])
        if self._tasks:
            reserve_connections(self._redis, -1)
        self._unsettled.clear()
        if self._heartbeat is not None:  # no longer live (else: counted until its beat ends)
            with contextlib.suppress(*CLIENT_ERRORS):
                await self._redis.zrem(self._heartbeat, self._name)
        try:
            args: list[EncodableT] = [self._group, self._name, RETURNED, GIVEN_BACK_IDLE_MS]
            await self._scripts.give_back(keys=self._keys[:1], args=args)
        except CLIENT_ERRORS as exc:  # they come back after claim_idle instead
            log.warning(
                "pigeon: %s: could not hand back unsettled entries: %s", self.stream, describe(exc)
            )

    # -- settling ------------------------------------------------------------------------------

    def _take(self, delivery: StreamDelivery) -> bool:
        """Whether ``delivery`` was unsettled (and now is not)."""
        return self._unsettled.pop(delivery.entry_id, None) is not None

    async def ack(self, delivery: StreamDelivery) -> None:
        """``XACK`` and ``XDEL`` the entry: acknowledged entries take no room."""
        if self._take(delivery):
            await self._acknowledge(delivery.entry_id)

    async def _acknowledge(self, entry_id: bytes) -> None:
        with translated(self._url, f"acknowledging a message of {self.stream!r}"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xack(self.stream, self._group, entry_id)
                pipe.xdel(self.stream, entry_id)
                await pipe.execute()

    async def redeliver(self, delivery: StreamDelivery, delay: float) -> None:
        """Move the entry to the delayed set, due in ``delay`` seconds, with its counts."""
        if not self._take(delivery):
            return
        args: list[EncodableT] = [self._group, delivery.entry_id, int(delay * 1000)]
        args += [delivery.attempt, delivery.returns]
        with translated(self._url, f"redelivering a message of {self.stream!r}"):
            await self._scripts.defer(keys=self._keys, args=args)
        self._promote_after(delay)

    async def dead_letter(self, delivery: StreamDelivery, failure: Failure) -> None:
        """Store the entry with ``failure`` through the sink (which acks it), or drop it."""
        if not self._take(delivery):
            return
        if self._sink is not None:
            await self._sink(delivery, failure)
            return
        log.error(
            "pigeon: dropped event of %s message_id=%s: %s: %s",
            self.stream,
            one_line(delivery.envelope.message_id),
            failure.type,
            one_line(failure.message),
        )
        await self._acknowledge(delivery.entry_id)

    def _promote_after(self, delay: float) -> None:
        """Promote due delayed entries in ``delay`` seconds (others' are found by fetches)."""

        def fire() -> None:
            self._timers.discard(timer)
            if not self._closed:
                task = watched(self._promote(), f"promoting delayed entries of {self.stream}")
                self._promotions.add(task)
                task.add_done_callback(self._promotions.discard)

        timer = asyncio.get_running_loop().call_later(delay, fire)
        self._timers.add(timer)

    async def _promote(self) -> None:
        """Move due delayed entries back onto the stream, which wakes a blocked reader."""
        with contextlib.suppress(*CLIENT_ERRORS):
            await self._scripts.promote(keys=self._keys, args=self._unmovable_args())

    def _unmovable_args(self) -> list[EncodableT]:
        """The queue name and failed-at time a delayed job that cannot be moved is buried with."""
        return [self._queue, datetime.now(UTC).isoformat()]

    # -- fetching ------------------------------------------------------------------------------

    async def _pump(self) -> None:
        while not self._closed:
            try:
                await self._pump_once()
            except CLIENT_ERRORS as exc:
                if is_missing_group(exc):
                    await self._declare_again()
                    continue
                log.warning(
                    "pigeon: reading %s failed, retrying in 1s: %s", self.stream, describe(exc)
                )
                await asyncio.sleep(1.0)
            except Exception:  # a bug must not stop the consumer for good
                log.exception("pigeon: reading %s failed; retrying in 1s", self.stream)
                await asyncio.sleep(1.0)

    async def _declare_again(self) -> None:
        """Declare the queue again after its group went; a failure is logged and tried again a
        second later (never at once: a loop of failing scripts would load the server)."""
        try:
            await self._redeclare()
        except Exception as exc:  # BrokerError (translated) included: the consumer must go on
            log.warning(
                "pigeon: declaring %s again failed, retrying in 1s: %s", self.stream, describe(exc)
            )
            await asyncio.sleep(1.0)

    async def _pump_once(self) -> None:
        free = await self._runner.wait_free()
        loop = asyncio.get_running_loop()
        claim = loop.time() >= self._next_claim
        if claim:
            self._next_claim = loop.time() + self._claim_every
        args: list[EncodableT] = [self._group, self._name, free, self._claim_idle_ms]
        args += [self._cursor, int(claim), *self._unmovable_args(), RETURNED]
        fetched: Any = await self._scripts.fetch(keys=self._keys, args=args)
        entries, wait_ms, self._cursor, claimed = fetched
        for entry_id, flat, count in entries:
            self._deliver(entry_id, _pairs(flat), count)
        if claimed == free:  # claims filled the slots: more may wait
            self._next_claim = 0.0  # take them before newer entries, in the order they came
        if entries:
            return
        block = BLOCK if wait_ms < 0 else min(BLOCK, wait_ms / 1000)
        block = min(block, max(self._next_claim - loop.time(), 0.001))
        read = await self._read_blocking(free, max(1, int(block * 1000)))
        for entry_id, fields in read:
            self._deliver(entry_id, fields, 1)

    async def _read_blocking(self, free: int, block_ms: int) -> list[tuple[bytes, Any]]:
        """New entries, waiting up to ``block_ms`` for some. A give-back does not wake a blocked
        ``XREADGROUP`` and a new entry does: if entries were given back meanwhile, the ones read
        are given back too, so that the next fetch claims them all in order (the read ones
        count no delivery: ``RETRYCOUNT 0``)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xreadgroup(self._group, self._name, {self.stream: ">"}, count=free, block=block_ms)
            pipe.xpending_range(self.stream, self._group, "-", "+", 1, consumername=RETURNED)
            read, given_back = await pipe.execute()
        entries = [entry for _, stream_entries in read or () for entry in stream_entries]
        if not entries or not given_back:
            return entries
        ids = [entry_id for entry_id, _ in entries]
        await self._redis.xclaim(
            self.stream,
            self._group,
            RETURNED,
            0,
            ids,
            idle=GIVEN_BACK_IDLE_MS,
            retrycount=0,
            justid=True,
        )
        self._next_claim = 0.0
        return []

    def _deliver(self, entry_id: bytes, fields: dict[bytes, bytes], count: int) -> None:
        """Start handling one entry; one that cannot be started (a bug) is logged and
        dead-lettered (see ``dead_letter``), and the entries read with it are handled as ever."""
        try:
            delivery = StreamDelivery(self, entry_id, self._parse(entry_id, fields), count)
            self._unsettled[entry_id] = delivery
            self._runner.start(self._handler(delivery))
        except Exception as exc:
            log.exception(
                "pigeon: could not start entry %s of %s; %s it",
                entry_id.decode(errors="replace"),
                self.stream,
                "dropping" if self._sink is None else "dead-lettering",
            )
            self._bury(entry_id, fields, count, exc)

    def _bury(
        self, entry_id: bytes, fields: dict[bytes, bytes], count: int, error: Exception
    ) -> None:
        """Dead-letter an entry that could not be started, its fields kept as it has them: the
        body (a job's ``body``, an event's ``message``) and every other field as a header."""
        body = fields.get(b"body", fields.get(b"message", b""))
        headers = {
            name.decode("utf-8", "replace"): value.decode("utf-8", "replace")
            for name, value in fields.items()
            if name not in (b"body", b"message")
        }
        parsed = (Envelope(body, headers, ""), self._queue, 0, 0)
        delivery = self._unsettled[entry_id] = StreamDelivery(self, entry_id, parsed, count)
        now = datetime.now(UTC)
        failure = Failure(type(error).__name__, describe(error), count, self._queue, now)
        self._runner.start(self.dead_letter(delivery, failure))

    async def _keep_alive(self) -> None:
        """Every third of ``claim_idle``: beat, and claim the entries in hand again. An
        unexpected error (a bug) is logged, and the next round goes on: were it to stop, live
        handlers' entries would be taken from them."""
        while True:
            try:
                await self._keep_alive_once()
            except Exception:
                log.exception("pigeon: keeping %s's entries in hand failed", self.stream)
            await asyncio.sleep(self._claim_idle_ms / 3000)

    async def _keep_alive_once(self) -> None:
        if self._heartbeat is not None:
            beat: list[EncodableT] = [self._name, self._claim_idle_ms]
            with contextlib.suppress(*CLIENT_ERRORS):
                await self._scripts.beat(keys=[self._heartbeat], args=beat)
        held = list(self._unsettled)
        if held:
            args: list[EncodableT] = [self._group, self._name, *held]
            with contextlib.suppress(*CLIENT_ERRORS):
                await self._scripts.keep(keys=self._keys[:1], args=args)


def _pairs(flat: list[Any]) -> dict[bytes, bytes]:
    """A Lua reply's flat field list as a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))
