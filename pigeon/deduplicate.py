"""``Deduplicate``: an idempotent consumer, so a message delivered twice runs its handler once.

Brokers deliver at least once: a worker that dies after its handler returned but before the ack
gets the job again. ``Deduplicate`` remembers, per handler, the ids of messages whose handler
returned, and skips (and acks) a message whose id it has seen within ``ttl`` seconds. The id is
the sender's message id, which a retried publish keeps. ``MemoryStore`` remembers for one process;
``RedisStore`` (redis-py, a dependency of pigeon) for every process that shares the Redis server.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

from pigeon.errors import ConfigurationError
from pigeon.message import Message
from pigeon.middleware import CallNext

if TYPE_CHECKING:
    from pigeon.routing import Route

log = logging.getLogger("pigeon")


class DeduplicationStore(Protocol):
    """Where ``Deduplicate`` keeps the keys of handled messages."""

    async def seen(self, key: str) -> bool:
        """Whether ``key`` was remembered and has not expired."""
        ...

    async def remember(self, key: str, ttl: float) -> None:
        """Keep ``key`` for ``ttl`` seconds."""
        ...


class MemoryStore:
    """Keys in a dict of this process, each dropped ``ttl`` seconds after it was remembered."""

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}
        self._next_prune = 0.0

    async def seen(self, key: str) -> bool:
        """Whether ``key`` is remembered and not expired."""
        expiry = self._expiry.get(key)
        return expiry is not None and expiry > time.monotonic()

    async def remember(self, key: str, ttl: float) -> None:
        """Keep ``key`` for ``ttl`` seconds; expired keys are dropped now and then."""
        now = time.monotonic()
        self._expiry[key] = now + ttl
        if now >= self._next_prune:
            self._expiry = {k: t for k, t in self._expiry.items() if t > now}
            self._next_prune = now + min(ttl, 60.0)


class RedisStore:
    """Keys in Redis (``SET key 1 EX ttl``), shared by every worker that uses the same server.

    ``url`` is a redis-py URL (``redis://127.0.0.1:6379/0``); ``prefix`` starts every key.
    Connection errors propagate from the handler call, so the message is retried or redelivered.
    """

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", prefix: str = "pigeon:dedup:"):
        try:
            from redis.asyncio import Redis
        except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
            raise ConfigurationError("RedisStore needs redis-py: pip install redis") from exc
        self.prefix = prefix
        self.client = Redis.from_url(url)

    async def seen(self, key: str) -> bool:
        """Whether Redis holds ``key``."""
        return bool(await self.client.exists(self.prefix + key))

    async def remember(self, key: str, ttl: float) -> None:
        """Set ``key`` with an expiry of ``ttl`` seconds (at least one millisecond)."""
        await self.client.set(self.prefix + key, b"1", px=max(1, int(ttl * 1000)))

    async def close(self) -> None:
        """Close the connection pool. Idempotent."""
        await self.client.aclose()


class Deduplicate:
    """Skip a message whose handler already returned for the same message id.

    ``store`` holds the keys (``MemoryStore()``, ``RedisStore(url)``); ``ttl`` is how long, in
    seconds, a handled id is remembered: longer than a message can take to come back (the
    broker's redelivery delays, a worker's restart). The key is the pattern, the declared subject
    or queue, who handles it and the message id, so each handler of an event deduplicates on its
    own: a work queue's workers (or an rpc subject's servers) in every App share their keys, as
    do a subscriber group's members (or a durable subscription's), while a plain subscriber is
    keyed on its function and its App, since each of those gets every event. One
    ``Deduplicate`` (and store) may serve any number of handlers. A message is remembered only
    once its handler returned: one that failed runs again. Two deliveries of one message at the
    very same time may both run. A skipped message is acked; for an rpc the reply is ``None``.
    """

    def __init__(self, store: DeduplicationStore, *, ttl: float = 24 * 3600.0) -> None:
        if not isinstance(ttl, int | float) or ttl <= 0:
            raise ConfigurationError(f"Deduplicate(ttl={ttl!r}): give a positive number of seconds")
        self.store = store
        self.ttl = float(ttl)
        self.scope = ""
        """Who handles the messages, in the keys; set per handler by the App (``scoped``)."""

    def __repr__(self) -> str:
        return f"Deduplicate({self.store!r}, ttl={self.ttl:g})"

    async def handle(self, message: Message, call_next: CallNext) -> Any:
        """Call the handler unless ``message``'s id was handled; remember it once it returned."""
        key = f"{message.pattern}:{message.route}:{self.scope}:{message.message_id}"
        if await self.store.seen(key):
            log.info(
                "pigeon: skipped duplicate subject=%s message_id=%s",
                message.subject,
                message.message_id,
            )
            return None
        result = await call_next(message)
        await self.store.remember(key, self.ttl)
        return result


def scoped(middleware: tuple[Any, ...], scope: str) -> tuple[Any, ...]:
    """``middleware`` with each ``Deduplicate`` keyed on ``scope`` (who handles the messages:
    ``App`` computes it per handler); a copy sharing the store and ttl."""
    if not scope or not any(isinstance(m, Deduplicate) for m in middleware):
        return middleware
    return tuple(_scoped(m, scope) if isinstance(m, Deduplicate) else m for m in middleware)


def _scoped(deduplicate: Deduplicate, scope: str) -> Deduplicate:
    copied = copy.copy(deduplicate)
    copied.scope = scope
    return copied


def scope_of(route: Route, app_instance: str) -> str:
    """Who handles ``route``'s messages, for ``Deduplicate``'s keys: the group or durable
    name its members share, else (a plain subscriber gets every event) the function in the App
    ``app_instance`` names; for rpc and workers the subject or queue (in the key already) says
    it all."""
    if route.kind != "subscribe":
        return ""
    group, durable = route.options["group"], route.options["durable"]
    if group is not None or durable is not None:
        return f"group={group or ''},durable={durable or ''}"
    fn = route.handler.fn
    return f"{getattr(fn, '__module__', '')}.{route.handler.name}@{app_instance}"
