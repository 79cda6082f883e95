"""Work queues on Redis Streams: one stream and consumer group ``workers`` per queue, a
``<p>q:<queue>:dlq`` stream beside it (see ``topology`` for the keys, ``consumer`` for fetching)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pigeon.errors import BrokerError
from pigeon.message import Envelope, Failure
from pigeon.transports.base import Backlog, Handler, Subscription
from pigeon.transports.limits import check_headers
from pigeon.transports.redis import backlog, wire
from pigeon.transports.redis.calls import SEND, Calls
from pigeon.transports.redis.consumer import Parsed, StreamConsumer, StreamDelivery
from pigeon.transports.redis.dead_letters import DeadLetters
from pigeon.transports.redis.errors import translated
from pigeon.transports.redis.scripts import Scripts
from pigeon.transports.redis.topology import WORKERS, Declarer, Keys, consumer_name

REPLAY = "some letters may be back on the queue, the others are still dead letters: replay again"
"""What a replay the close cut means (each letter moves alone, atomically)."""

PURGE = "they may or may not be deleted: purge again"
"""What a purge the close cut means (it is one transaction)."""

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.typing import EncodableT


class RedisJobs:
    """``Jobs`` of a connected ``RedisTransport``; ``track`` is told of every consumer started.

    ``options``: the transport's own (``wait_replicas``, ``wait_timeout``, ``max_message_size``);
    a queue's ``claim_idle`` comes from its declaration (``Declarer.queue``); ``calls`` holds
    the enqueues, reads and admin calls under way (for the close).
    """

    def __init__(
        self,
        redis: Redis,
        url: str,
        keys: Keys,
        declarer: Declarer,
        scripts: Scripts,
        options: dict[str, Any],
        track: Callable[[Subscription], None],
        calls: Calls,
    ) -> None:
        self._redis, self._url, self._keys, self._calls = redis, url, keys, calls
        self._declarer, self._scripts, self._options, self._track = (
            declarer,
            scripts,
            options,
            track,
        )
        self._dead_letters = DeadLetters(redis, url, keys)

    async def enqueue(self, queue: str, envelope: Envelope, *, delay: float = 0.0) -> None:
        check_headers(envelope.headers, self._url)
        wire.check_job(envelope)
        fields = wire.job_fields(envelope)
        wire.check_size(wire.fields_size(fields), self._options["max_message_size"])
        doing = f"enqueueing on {queue!r}"
        with self._calls(doing, SEND):
            await self._declarer.queue(queue, strict=False)
            with translated(self._url, doing):
                if delay > 0:
                    await self._schedule(queue, envelope.message_id, fields, delay)
                else:
                    await self._redis.xadd(self._keys.queue(queue), fields)  # type: ignore[arg-type]
                await self._wait_for_replicas(queue)

    async def _schedule(
        self, queue: str, message_id: str, fields: wire.Fields, delay: float
    ) -> None:
        """Put the job in the queue's delayed set (a worker's fetch promotes it when due)."""
        args: list[EncodableT] = [max(1, round(delay * 1000)), message_id]
        for name, value in fields.items():
            args += [name, value]
        await self._scripts.schedule(keys=[self._keys.delayed(queue)], args=args)

    async def _wait_for_replicas(self, queue: str) -> None:
        wanted = self._options["wait_replicas"]
        if not wanted:
            return
        timeout = self._options["wait_timeout"]
        confirmed = await self._redis.wait(wanted, int(timeout * 1000))
        if confirmed < wanted:
            raise BrokerError(
                f"enqueueing on {queue!r}: {self._url} stored the job but only {confirmed} of "
                f"{wanted} replicas confirmed it within {timeout:g}s; it may be lost if the "
                "primary fails"
            )

    async def consume(self, queue: str, handler: Handler, *, concurrency: int) -> Subscription:
        claim_idle = await self._declarer.queue(queue)

        def parse(entry_id: bytes, fields: dict[bytes, bytes]) -> Parsed:
            envelope, deliveries, returns = wire.job_of(entry_id, fields)
            return envelope, queue, deliveries, returns

        async def sink(delivery: StreamDelivery, failure: Failure) -> None:
            await self._dead_letters.add(queue, delivery, failure)

        async def redeclare() -> None:  # as a producer would: a conflict must not stop the pump
            await self._declarer.queue(queue, again=True, strict=False, claim_idle=claim_idle)

        consumer = StreamConsumer(
            self._redis,
            self._scripts,
            self._url,
            stream=self._keys.queue(queue),
            group=WORKERS,
            consumer=consumer_name(),
            handler=handler,
            concurrency=concurrency,
            claim_idle=claim_idle,
            parse=parse,
            sink=sink,
            redeclare=redeclare,
            delayed=self._keys.delayed(queue),
            dead_letters=self._keys.dead_letters(queue),
            queue=queue,
            heartbeat=self._keys.consumers(queue),
        )
        consumer.start()
        self._track(consumer)
        return consumer

    async def exists(self, queue: str) -> bool:
        """Whether the work queue ``queue`` exists (its stream is there)."""
        doing = f"checking work queue {queue!r}"
        with self._calls(doing), translated(self._url, doing):
            return bool(await self._redis.exists(self._keys.queue(queue)))

    async def dead_letters(self, queue: str, limit: int | None = None) -> list[Envelope]:
        with self._calls(f"reading the dead letters of {queue!r}"):
            return [letter for _, letter in await self._dead_letters.read(queue, limit)]

    async def replay_dead_letters(self, queue: str, limit: int | None = None) -> int:
        with self._calls(f"replaying the dead letters of {queue!r}", REPLAY):
            if not await self._dead_letters.read(queue, 1):
                return 0  # declaring nothing: a misspelt queue stays unknown
            await self._declarer.queue(queue, strict=False)
            return await self._dead_letters.replay(queue, limit)

    async def purge_dead_letters(self, queue: str) -> int:
        with self._calls(f"purging the dead letters of {queue!r}", PURGE):
            return await self._dead_letters.purge(queue)

    async def backlog(self, queue: str) -> Backlog:
        with self._calls(f"reading the backlog of {queue!r}"):
            return await backlog.read(self._redis, self._url, self._keys, queue)
