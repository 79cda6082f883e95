"""Members of a Redis consumer group reading a stream without acks: groups' members and rpc
servers (see ``SharedReader``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from pigeon.errors import PigeonError
from pigeon.failures import describe
from pigeon.transports.base import Handler
from pigeon.transports.redis import wire
from pigeon.transports.redis.consumer import BLOCK, Parsed, reserve_connections
from pigeon.transports.redis.errors import CLIENT_ERRORS, is_missing_group
from pigeon.transports.redis.subscriber import EventDelivery
from pigeon.transports.redis.tasks import cancel_all, watched
from pigeon.transports.redis.topology import consumer_name
from pigeon.transports.runner import HandlerRunner

log = logging.getLogger("pigeon")


def parse_event(entry_id: bytes, fields: dict[bytes, bytes]) -> Parsed:
    """The envelope and subject of an event-stream entry (``subject``, ``message`` fields)."""
    subject = fields.get(b"subject", b"").decode("utf-8", "replace")
    return wire.unpack(fields.get(b"message", b"")), subject, 0, 0


UNBLOCK_EVERY = 0.05
"""Seconds between a closing member's ``CLIENT UNBLOCK``s of its read (one sent before the read
reached Redis does nothing)."""


class SharedReader:
    """Members of a consumer group reading a stream without acks (``NOACK``): each entry goes to
    one member, and none is kept for a member that stops. Groups and RPC servers use it.

    An entry Redis hands to a read is gone from the stream (``NOACK``), so a closing member never
    cancels its read in flight: it reads on a connection of its own and ends the blocking read
    with ``CLIENT UNBLOCK``; the read returns what it was handed, which is started as any other.
    """

    def __init__(
        self,
        redis: Redis,
        url: str,
        stream: str,
        group: str,
        handler: Handler,
        concurrency: int,
        *,
        join: Callable[[str], Awaitable[None]],
        leave: Callable[[str], Awaitable[None]],
        heartbeat: float | None = None,
    ) -> None:
        self._redis, self._url, self._stream, self._group = redis, url, stream, group
        self._handler, self._runner = handler, HandlerRunner(concurrency, handler=handler)
        self._join, self._leave, self._heartbeat = join, leave, heartbeat
        self.consumer = consumer_name()
        self._tasks: list[asyncio.Task[None]] = []
        self._reading: asyncio.Future[None] | None = None  # a read in flight, done when it ends
        self._reader = redis.client()  # one connection: its id ends the read (CLIENT UNBLOCK)
        self._reader_id: int | None = None
        self._closed = False

    async def start(self) -> None:
        """Join, then read; returns once an entry added now would reach this member."""
        await self._join(self.consumer)
        reserve_connections(self._redis, 1)
        self._tasks.append(watched(self._pump(), f"reading {self._stream}"))
        if self._heartbeat is not None:
            self._tasks.append(watched(self._beat(self._heartbeat), f"beating in {self._stream}"))

    async def close(self, timeout: float) -> None:
        if self._closed:
            return
        self._closed = True
        await self._end_read()
        await cancel_all(self._tasks)
        if self._tasks:
            reserve_connections(self._redis, -1)
        with contextlib.suppress(*CLIENT_ERRORS):
            await self._reader.aclose(close_connection_pool=False)
        with contextlib.suppress(*CLIENT_ERRORS):
            await self._leave(self.consumer)
        await self._runner.drain(timeout)

    async def _end_read(self) -> None:
        """End the read in flight, if any, and wait (up to ``BLOCK`` seconds) until it has
        returned and what it brought has started."""
        reading, loop = self._reading, asyncio.get_running_loop()
        deadline = loop.time() + BLOCK + 1.0
        while reading is not None and not reading.done() and loop.time() < deadline:
            if self._reader_id is not None:
                with contextlib.suppress(*CLIENT_ERRORS):
                    await self._redis.client_unblock(self._reader_id)
            await asyncio.wait({reading}, timeout=UNBLOCK_EVERY)

    async def _pump(self) -> None:
        while not self._closed:
            try:
                await self._read()
            except CLIENT_ERRORS as exc:
                self._reader_id = None  # a new connection, maybe
                if self._closed:  # the stream went with another member's leave
                    return
                if is_missing_group(exc):  # deleted (the group found empty): make it again
                    await self._rejoin()
                    continue
                log.warning(
                    "pigeon: reading %s failed, retrying in 1s: %s", self._stream, describe(exc)
                )
                await asyncio.sleep(1.0)
            except Exception:  # a bug must not stop the reader for good
                log.exception("pigeon: reading %s failed; retrying in 1s", self._stream)
                await asyncio.sleep(1.0)

    async def _rejoin(self) -> None:
        """Make the group again and join it; a failure (a server restarting, a command refused)
        is logged and tried again a second later: the reader goes on, it never ends here."""
        try:
            await self._join(self.consumer)
        except Exception as exc:  # BrokerError (translated) included: the reader must go on
            log.warning(
                "pigeon: joining %s again failed, retrying in 1s: %s", self._stream, describe(exc)
            )
            await asyncio.sleep(1.0)

    async def _read(self) -> None:
        runner = self._runner
        free = await runner.wait_free()
        if self._reader_id is None:
            self._reader_id = int(await self._reader.client_id())
        if self._closed:
            return
        reading = self._reading = asyncio.get_running_loop().create_future()
        try:
            read: Any = await self._reader.xreadgroup(
                self._group,
                self.consumer,
                {self._stream: ">"},
                count=free,
                block=int(BLOCK * 1000),
                noack=True,
            )
        finally:
            reading.set_result(None)
            self._reading = None
        for _, entries in read or ():
            for entry_id, fields in entries:
                self._start(entry_id, fields)

    def _start(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        """Start handling one entry; one that cannot be started (a bug) is logged and dropped
        (read ``NOACK``, it is gone from the stream), and the entries read with it are handled
        as ever."""
        try:
            envelope, subject, _, _ = parse_event(entry_id, fields)
            self._runner.start(self._handler(EventDelivery(envelope, subject)))
        except Exception:
            shown = entry_id.decode(errors="replace")
            log.exception("pigeon: dropped entry %s of %s: it could not start", shown, self._stream)

    async def _beat(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self._join(self.consumer)
            except CLIENT_ERRORS:
                pass  # the next beat, within the member's time to live
            except PigeonError:  # the same, translated (a script's error)
                pass
            except Exception:  # a bug must not stop the beat: the member would expire
                log.exception("pigeon: beating in %s failed", self._stream)
