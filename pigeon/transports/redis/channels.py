"""The one Pub/Sub connection of a transport: plain event subscriptions, the App's reply inbox
and the presence channels of its RPC servers all share it.

A Redis connection in Pub/Sub mode can run nothing else, so every transport has this one beside
its command connections. ``Channels`` reads it in one task and hands each message to the callbacks
of its channel or glob pattern; callbacks must not block (they queue or resolve a future). After a
lost connection, redis-py reconnects and subscribes again to everything; each channel's
``resubscribed`` hooks then run, so that what its subscribers registered beside the subscription
(a wildcard server's entry, which a caller may have found dead meanwhile) is registered again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from pigeon.errors import BrokerError
from pigeon.failures import describe, one_line
from pigeon.transports.redis.errors import CLIENT_ERRORS, translated
from pigeon.transports.redis.tasks import cancel_all, watched

log = logging.getLogger("pigeon")

Callback = Callable[[bytes, bytes], None]
"""Called with a message's channel and payload."""

_RETRY_AFTER = 0.5
KEEPALIVE = 5.0
"""Seconds of silence on the Pub/Sub connection after which it is sent a PING. A PING still
unanswered, with nothing else heard, ``KEEPALIVE`` seconds later means a server that stopped
answering (frozen, or a path that drops everything, which no socket error reports): the
connection is closed, so that the transport is not ``connected`` (readiness) and redis-py
connects and subscribes again."""
CONFIRM_PATIENCE = 10.0
"""Seconds a subscription waits for the server's confirmation when no ``socket_timeout`` is set."""


class Channels:
    """Subscriptions to channels and patterns on one Pub/Sub connection."""

    def __init__(self, redis: Redis, url: str, patience: float | None = None) -> None:
        """``patience``: seconds to wait for the server to confirm a subscription (the client's
        ``socket_timeout``; ``None``: ``CONFIRM_PATIENCE``)."""
        self._url = url
        self._patience = CONFIRM_PATIENCE if patience is None else patience
        self._bound_by = (
            "socket_timeout" if patience is not None else "pigeon's, as socket_timeout is None"
        )
        self._pubsub: PubSub = redis.pubsub()
        self._callbacks: dict[tuple[bool, bytes], list[Callback]] = {}
        self._confirmations: dict[tuple[bool, bytes], asyncio.Future[None]] = {}
        self._departures: dict[tuple[bool, bytes], asyncio.Future[None]] = {}
        self._resubscribed: dict[tuple[bool, bytes], list[Callable[[], None]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._heard = 0.0
        """The loop's time when the reader last got a message (a PONG included)."""
        self.healthy = False

    async def subscribe(
        self,
        name: str,
        callback: Callback,
        *,
        pattern: bool = False,
        resubscribed: Callable[[], None] | None = None,
    ) -> None:
        """Call ``callback`` for each message on channel ``name`` (or glob ``name`` with
        ``pattern``); returns once the server has the subscription. ``resubscribed`` is called
        each time the subscription is made again after a lost connection."""
        key = (pattern, name.encode())
        if resubscribed is not None:
            self._resubscribed.setdefault(key, []).append(resubscribed)
        known = self._callbacks.setdefault(key, [])
        known.append(callback)
        if len(known) > 1:
            return
        confirmed = asyncio.get_running_loop().create_future()
        self._confirmations[key] = confirmed
        try:
            with translated(self._url, f"subscribing to {name!r}"):
                if pattern:
                    await self._pubsub.psubscribe(name)
                else:
                    await self._pubsub.subscribe(name)
            if self._reader is None:
                self._reader = watched(self._read(), f"reading Pub/Sub messages from {self._url}")
                self._watchdog = watched(self._keep_alive(), f"keeping {self._url} alive")
            try:
                async with asyncio.timeout(self._patience):
                    await confirmed
            except TimeoutError:
                raise BrokerError(
                    f"subscribing to {name!r}: {self._url} did not confirm it within "
                    f"{self._patience:g}s ({self._bound_by}); is it a Redis port, and is "
                    "the server healthy (redis-cli ping)?"
                ) from None
        except BaseException:
            self._confirmations.pop(key, None)
            known.remove(callback)
            self._forget_hook(key, resubscribed)
            raise

    async def unsubscribe(
        self,
        name: str,
        callback: Callback,
        *,
        pattern: bool = False,
        resubscribed: Callable[[], None] | None = None,
    ) -> None:
        """Stop calling ``callback`` (and ``resubscribed``) for ``name``; unsubscribe when it was
        the last one, and return once the server confirmed it (``PUBSUB NUMSUB`` no longer
        counts this connection) or after the patience it waits for a subscription's."""
        key = (pattern, name.encode())
        self._forget_hook(key, resubscribed)
        known = self._callbacks.get(key, [])
        if callback in known:
            known.remove(callback)
        if known:
            return
        self._callbacks.pop(key, None)
        departed = self._departures[key] = asyncio.get_running_loop().create_future()
        with contextlib.suppress(*CLIENT_ERRORS, TimeoutError):
            if pattern:
                await self._pubsub.punsubscribe(name)
            else:
                await self._pubsub.unsubscribe(name)
            if self._reader is not None and self.healthy:
                async with asyncio.timeout(self._patience):
                    await departed
        if self._departures.get(key) is departed:
            del self._departures[key]

    def _forget_hook(self, key: tuple[bool, bytes], hook: Callable[[], None] | None) -> None:
        hooks = self._resubscribed.get(key, [])
        if hook in hooks:
            hooks.remove(hook)

    async def close(self) -> None:
        """Stop reading and close the connection. Idempotent."""
        tasks = [task for task in (self._reader, self._watchdog) if task is not None]
        self._reader = self._watchdog = None
        await cancel_all(tasks)
        self._callbacks.clear()
        self._resubscribed.clear()
        self.healthy = False
        with contextlib.suppress(*CLIENT_ERRORS):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _read(self) -> None:
        """Read and dispatch every message, for good: a lost connection is waited out, and an
        unexpected error (a bug) is logged, never the end of every subscription."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except CLIENT_ERRORS as exc:
                if self.healthy:
                    log.warning(
                        "pigeon: Pub/Sub connection to %s lost (%s)", self._url, describe(exc)
                    )
                self.healthy = False
                await asyncio.sleep(_RETRY_AFTER)
                continue
            except Exception:
                log.exception("pigeon: reading Pub/Sub messages from %s failed", self._url)
                await asyncio.sleep(_RETRY_AFTER)
                continue
            self._heard = loop.time()
            if not self.healthy:
                self.healthy = True
            if message is not None:
                self._dispatch(message)

    async def _keep_alive(self) -> None:
        """Every ``KEEPALIVE`` seconds: after that long with nothing heard, send a PING (its
        answer is a message); if nothing was heard since the PING sent a round before, close
        the connection, which ends the reader's read with an error. Run beside the reader, not
        in it: after a stalled event loop, the reader takes what came meanwhile first."""
        loop = asyncio.get_running_loop()
        pinged: float | None = None
        while True:
            await asyncio.sleep(KEEPALIVE)
            now = loop.time()
            if not self._pubsub.subscribed or now - self._heard < KEEPALIVE:
                pinged = None
            elif pinged is None or self._heard > pinged:
                pinged = now
                with contextlib.suppress(*CLIENT_ERRORS):
                    await self._pubsub.ping()
            else:
                pinged = None
                await self._cut(f"no answer to a PING within {KEEPALIVE:g}s")

    async def _cut(self, why: str) -> None:
        """Close the Pub/Sub connection of a server that stopped answering."""
        if self.healthy:
            log.warning("pigeon: Pub/Sub connection to %s lost (%s)", self._url, why)
        self.healthy = False
        connection = self._pubsub.connection
        if connection is not None:
            with contextlib.suppress(*CLIENT_ERRORS):
                await connection.disconnect()

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "message":
            self._hand(self._callbacks.get((False, message["channel"]), ()), message)
        elif kind == "pmessage":
            self._hand(self._callbacks.get((True, message["pattern"]), ()), message)
        elif kind in ("subscribe", "psubscribe"):
            key = (kind == "psubscribe", message["channel"])
            confirmed = self._confirmations.pop(key, None)
            if confirmed is None:  # not asked for: redis-py subscribed again after reconnecting
                for hook in list(self._resubscribed.get(key, ())):
                    hook()
            elif not confirmed.done():
                confirmed.set_result(None)
        elif kind in ("unsubscribe", "punsubscribe"):
            departed = self._departures.pop((kind == "punsubscribe", message["channel"]), None)
            if departed is not None and not departed.done():
                departed.set_result(None)

    def _hand(self, callbacks: Iterable[Callback], message: dict[str, Any]) -> None:
        """Call each of ``callbacks`` with ``message``; one that raises is logged, and the others
        (and the messages after) are called as ever."""
        channel, payload = message["channel"], message["data"]
        for callback in callbacks:
            try:
                callback(channel, payload)
            except Exception:
                shown = one_line(channel.decode("utf-8", "replace"))
                log.exception("pigeon: handing a message on %s failed; it is dropped", shown)
