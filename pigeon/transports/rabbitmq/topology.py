"""The exchanges and queues pigeon uses on RabbitMQ: their names, their arguments, declaring them.

Names are pure functions of the queue name, so producer, worker and operator agree on them:
``<queue>`` (work queue) and ``<queue>.dlq`` (its dead letters). A work queue's arguments come
only from the App (``Topology``), never from one handler, so every App declares it identically and
a difference is a ``DeclarationConflict``. With ``App(passive=True)`` nothing shared is declared:
each name is checked with a passive declaration and used as it is.

Delayed jobs and redeliveries go down one **delay ladder** per broker (vhost), shared by every
queue, as NServiceBus's RabbitMQ transport does: ``DELAY_LEVELS`` levels, level ``L`` an exchange
and a queue whose messages expire after 2^L ms and are dead-lettered to level ``L - 1``. A
message's routing key spells its delay in binary, highest level first (``0.1.1`` ... one token
per level); each level's exchange routes it into its queue when its bit is 1, else straight on to
the level below. Level 0 dead-letters into ``DELAY_DELIVERY``, a headers exchange that hands the
message to the work queue named in its ``pigeon-delay-queue`` header. The ladder is a fixed
``2 * DELAY_LEVELS + 1`` objects whatever the delays; longer delays than the ladder holds go down
it again for the rest (the job's ``x-pigeon-due`` header tells the consumer how long is left).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiormq.abc
from aio_pika.abc import AbstractRobustConnection

from pigeon import headers as h
from pigeon.errors import BrokerError, ConfigurationError, DeclarationConflict
from pigeon.transports.rabbitmq.errors import answered_within, translated

QUEUE_TYPES = ("quorum", "classic")

CLOSE_PATIENCE = 1.0
"""Seconds to wait for a channel or connection to close after the broker left a call
unanswered (it may answer nothing more)."""

Declaration = Callable[[aiormq.abc.AbstractChannel], Awaitable[Any]]


_QUEUE_NAME = re.compile(r"[a-zA-Z0-9\-_.:@#,/+ ]{1,200}")
"""The queue names aio-pika's protocol layer accepts (with room for pigeon's suffixes)."""


def checked_name(name: str, what: str) -> str:
    """``name`` if it can name a queue, else ``ConfigurationError`` saying what to change."""
    if not _QUEUE_NAME.fullmatch(name):
        raise ConfigurationError(
            f"{what} {name!r} cannot name a RabbitMQ queue or exchange; use at most 200 of the "
            "characters a-z A-Z 0-9 - _ . : @ # , / +"
        )
    return name


@functools.lru_cache(maxsize=4096)
def queue_name_for(text: str) -> str:
    """A valid queue name for ``text`` (a subject, maybe with wildcards): ``*`` becomes ``+`` and
    ``>`` becomes ``#``, as in MQTT; other invalid characters become ``_``, with a hash of
    ``text`` appended so that different subjects keep different queues. A text with a literal
    ``+`` or ``#`` gets the hash too: ``orders.+`` would otherwise name the queue of
    ``orders.*``."""
    name = text.replace("*", "+").replace(">", "#")
    ambiguous = "+" in text or "#" in text
    if _QUEUE_NAME.fullmatch(name) and not ambiguous:
        return name
    digest = hashlib.sha1(text.encode()).hexdigest()[:8]
    cleaned = re.sub(r"[^a-zA-Z0-9\-_.:@#,/+ ]", "_", name)[:180]
    return f"{cleaned}.{digest}"


def dead_letter_queue(queue: str) -> str:
    """The queue holding the dead letters of work queue ``queue``."""
    return f"{queue}.dlq"


DELAY_LEVELS = 32
"""Levels of the delay ladder: delays up to 2^32 - 1 ms (49.7 days) in one pass."""

DELAY_DELIVERY = "pigeon.delay.deliver"
"""The headers exchange at the foot of the ladder, bound to every work queue."""

DELAY_TARGET = h.DELAY_QUEUE
"""The header naming a delayed message's work queue."""


def delay_level(queue_type: str, level: int) -> str:
    """The exchange and the queue (same name) of ``level`` of the ``queue_type`` ladder."""
    return f"pigeon.delay.{queue_type}.{level:02d}"


def delay_route(delay_ms: int) -> tuple[int, str]:
    """Where a message delayed ``delay_ms`` enters the ladder: the level of its highest bit (the
    levels above it would pass it on) and its routing key, one 0/1 token per level, highest
    first. Delays beyond the ladder are cut to its longest."""
    delay_ms = min(max(delay_ms, 1), 2**DELAY_LEVELS - 1)
    bits = format(delay_ms, f"0{DELAY_LEVELS}b")
    return delay_ms.bit_length() - 1, ".".join(bits)


def _level_key(level: int, bit: str) -> str:
    """The binding key of ``level`` matching ``bit`` at its position in a routing key."""
    return ".".join(["*"] * (DELAY_LEVELS - 1 - level) + [bit, "#"])


def limit_marker(queue: str) -> str:
    """Classic queues only: the empty queue that records the App's delivery limit on the broker."""
    return f"{queue}.delivery-limit"


@dataclass(frozen=True, slots=True)
class Topology:
    """The App-wide settings every queue and exchange is declared from."""

    queue_type: str
    delivery_limit: int
    events_exchange: str
    rpc_exchange: str
    dead_letter_exchange: str
    passive: bool = False
    """Declare nothing shared: check that exchanges and queues exist, and use them as they are."""

    def __post_init__(self) -> None:
        if self.queue_type not in QUEUE_TYPES:
            raise ConfigurationError(
                f"queue_type={self.queue_type!r}: RabbitMQ work queues are 'quorum' (the "
                "default, replicated) or 'classic'"
            )
        if self.delivery_limit < 1:
            raise ConfigurationError(f"delivery_limit={self.delivery_limit}: give 1 or more")
        for exchange in (self.events_exchange, self.rpc_exchange, self.dead_letter_exchange):
            checked_name(exchange, "exchange")

    @property
    def quorum(self) -> bool:
        return self.queue_type == "quorum"

    def work_queue_arguments(self, queue: str) -> dict[str, Any]:
        """``queue`` dead-letters into ``<queue>.dlq`` through the DLX; quorum queues also stop
        redelivering a message after the delivery limit (classic ones have no such limit: pigeon
        counts for them)."""
        arguments: dict[str, Any] = {
            "x-queue-type": self.queue_type,
            "x-dead-letter-exchange": self.dead_letter_exchange,
            "x-dead-letter-routing-key": dead_letter_queue(queue),
        }
        if self.quorum:
            arguments["x-delivery-limit"] = self.delivery_limit
        return arguments

    def delay_level_arguments(self, level: int) -> dict[str, Any]:
        """Messages expire after 2^``level`` ms and go down to the level below (or, from level 0,
        to ``DELAY_DELIVERY``). Dead-lettering between levels is RabbitMQ's default (at most
        once): quorum queues' at-least-once strategy left RabbitMQ 3.10 unable to delete a vhost
        holding the ladder (seen here; docs/decisions.md)."""
        below = delay_level(self.queue_type, level - 1) if level else DELAY_DELIVERY
        return {
            "x-queue-type": self.queue_type,
            "x-message-ttl": 2**level,
            "x-dead-letter-exchange": below,
        }

    def durable_arguments(self) -> dict[str, Any]:
        return {"x-queue-type": self.queue_type}


class Declarer:
    """Declares exchanges and queues once per transport, each on a short-lived channel.

    A declaration that fails (``PRECONDITION_FAILED`` closes its channel) costs only that channel,
    and is tried again on next use. ``forget`` makes the next use declare again (after the broker
    lost a queue).
    """

    def __init__(
        self,
        connection: AbstractRobustConnection,
        url: str,
        topology: Topology,
        patience: float = 30.0,
    ):
        self._connection = connection
        self._url = url
        self._patience = patience
        self.topology = topology
        self._done: set[str] = set()  # forgotten at each reconnect: the node may have lost it
        connection.reconnect_callbacks.add(lambda _connection: self._done.clear())
        self._locks: dict[str, asyncio.Lock] = {}
        self._opening = asyncio.Lock()

    def forget(self, queue: str) -> None:
        self._done.discard(f"queue:{queue}")
        self._done.discard(f"used:{queue}")

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` each time the connection is back after a loss (the broker may have
        lost what was declared on it: a node restarted without its data, another node)."""
        self._connection.reconnect_callbacks.add(lambda _connection: callback())

    async def exists(self, queue: str) -> bool:
        """Whether ``queue`` exists (a passive declaration, on a channel of its own)."""

        async def check(channel: aiormq.abc.AbstractChannel) -> bool:
            try:
                await channel.queue_declare(queue, passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                return False
            return True

        found: bool = await self.run(f"checking queue {queue!r}", check, may_close=True)
        return found

    def has_exchange(self, name: str) -> bool:
        """Whether the exchange ``name`` was declared (or found) on this connection."""
        return f"exchange:{name}" in self._done

    async def exchange(self, name: str, kind: str) -> None:
        """Declare the durable exchange ``name`` of type ``kind`` (passive: check it exists)."""
        if f"exchange:{name}" in self._done:
            return
        if self.topology.passive:
            advice = "declare it first, or name one that exists with App(exchange=...)"
            await self.expect("exchange", name, advice)
            return

        async def declare(channel: aiormq.abc.AbstractChannel) -> None:
            await channel.exchange_declare(name, exchange_type=kind, durable=True)

        await self.once(f"exchange:{name}", f"declaring exchange {name!r}", declare)

    async def work_queue(self, queue: str, *, strict: bool = True) -> None:
        """Declare ``queue``, its dead-letter queue and their routing with this App's settings
        (passive: check that ``queue`` exists). Not ``strict`` (a producer, a reader of dead
        letters): a queue that exists is used as it is, whatever its settings; only a worker
        declares them."""
        if f"queue:{queue}" in self._done or (not strict and f"used:{queue}" in self._done):
            return
        if self.topology.passive:
            await self.expect("queue", queue, "declare it (durable) before pigeon uses it")
            return
        if not strict and await self.exists(queue):
            self._done.add(f"used:{queue}")
            return
        topology = self.topology
        await self.exchange(topology.dead_letter_exchange, "direct")
        dlq = dead_letter_queue(queue)

        async def declare(channel: aiormq.abc.AbstractChannel) -> None:
            if not topology.quorum:
                await self._mark_limit(channel, queue)
            await channel.queue_declare(
                queue, durable=True, arguments=topology.work_queue_arguments(queue)
            )
            await channel.queue_declare(dlq, durable=True, arguments=topology.durable_arguments())
            await channel.queue_bind(dlq, topology.dead_letter_exchange, routing_key=dlq)
            await channel.queue_bind(queue, DELAY_DELIVERY, arguments={DELAY_TARGET: queue})

        await self.exchange(DELAY_DELIVERY, "headers")
        await self.once(f"queue:{queue}", f"declaring work queue {queue!r}", declare)

    async def dead_letters(self, queue: str) -> None:
        """Make sure ``<queue>.dlq`` is there to store dead letters in: declared with the work
        queue, or (passive) checked, so that a worker says at its start that it cannot
        dead-letter rather than at its first failure."""
        if not self.topology.passive:
            await self.work_queue(queue)
            return
        dlq = dead_letter_queue(queue)
        if f"queue:{dlq}" not in self._done:
            advice = (
                f"pigeon stores the dead letters of {queue!r} there itself; declare it (durable), "
                "or run this worker without passive=True"
            )
            await self.expect("queue", dlq, advice)

    async def expect(self, kind: str, name: str, advice: str) -> None:
        """Check that the ``kind`` (``queue`` or ``exchange``) ``name`` exists, declaring nothing;
        ``ConfigurationError`` naming it and saying what to do (``advice``) if it does not."""

        async def check(channel: aiormq.abc.AbstractChannel) -> None:
            try:
                if kind == "queue":
                    await channel.queue_declare(name, passive=True)
                else:
                    await channel.exchange_declare(name, passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                raise ConfigurationError(
                    f"{kind} {name!r} does not exist on {self._url}, and App(passive=True) "
                    f"declares nothing: {advice}"
                ) from None

        await self.once(f"{kind}:{name}", f"checking {kind} {name!r}", check)

    async def delay_ladder(self) -> None:
        """Declare the delay ladder of this App's queue type (see the module docstring)."""
        key = f"ladder:{self.topology.queue_type}"
        if key in self._done:
            return
        if self.topology.passive:
            advice = (
                "delayed jobs and Redeliver go down pigeon's delay ladder; start one App of this "
                "queue without passive=True once, which declares the ladder and binds the queue"
            )
            await self.expect("exchange", delay_level(self.topology.queue_type, 0), advice)
            return
        await self.exchange(DELAY_DELIVERY, "headers")
        # 128 calls in all: each level of four gets the patience of one declaration
        await self.once(key, "declaring the delay ladder", self._declare_ladder, DELAY_LEVELS)

    async def _declare_ladder(self, channel: aiormq.abc.AbstractChannel) -> None:
        queue_type = self.topology.queue_type
        for level in range(DELAY_LEVELS):
            name = delay_level(queue_type, level)
            below = delay_level(queue_type, level - 1) if level else DELAY_DELIVERY
            arguments = self.topology.delay_level_arguments(level)
            await channel.exchange_declare(name, exchange_type="topic", durable=True)
            await channel.queue_declare(name, durable=True, arguments=arguments)
            await channel.queue_bind(name, name, routing_key=_level_key(level, "1"))
            await channel.exchange_bind(below, name, routing_key=_level_key(level, "0"))

    def forget_ladder(self) -> None:
        """Declare the ladder again on next use (someone deleted part of it)."""
        self._done.discard(f"ladder:{self.topology.queue_type}")

    async def run(
        self,
        action: str,
        steps: Declaration,
        *,
        confirms: bool = False,
        may_close: bool = False,
        parts: int = 1,
    ) -> Any:
        """Run ``steps`` on a channel of their own (with publisher confirms if ``confirms``),
        errors translated; ``BrokerError`` if the broker has not answered them within
        ``parts`` times the patience (``parts``: groups of a few calls in ``steps``).
        ``may_close``: the broker may close the channel (a passive check that finds nothing);
        no other channel of this Declarer opens until it has, since aiormq frees a closed
        channel's number before its ``Close-Ok`` is written, and a channel opened in between
        with that number makes the broker close the connection."""
        with translated(self._url, action):
            try:  # while disconnected, wait for the reconnect no longer than the patience
                async with asyncio.timeout(self._patience):
                    await self._connection.ready()
            except TimeoutError:
                raise BrokerError(
                    f"{self._url}: {action}: not connected, and not back within "
                    f"{self._patience:g}s (reconnect_patience)"
                ) from None
            transport = self._connection.transport
            if transport is None:
                raise ConnectionError("not connected")
            async with answered_within(self._patience * parts, self._url, action):
                async with self._opening:
                    channel = await transport.connection.channel(publisher_confirms=confirms)
                    if may_close:
                        return await _closing_after(channel, steps)
                return await _closing_after(channel, steps)

    async def once(self, key: str, action: str, steps: Declaration, parts: int = 1) -> None:
        """``run`` ``steps`` unless done under ``key`` on this connection; done once it ran."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._done:
                await self.run(action, steps, parts=parts)
                self._done.add(key)

    async def _mark_limit(self, channel: aiormq.abc.AbstractChannel, queue: str) -> None:
        # Classic queues take no x-delivery-limit, but the broker compares x-message-ttl on
        # redeclaration: recorded there, Apps that disagree on the limit fail as on quorum queues.
        marker = limit_marker(queue)
        try:
            await channel.queue_declare(
                marker,
                durable=True,
                arguments={"x-max-length": 0, "x-message-ttl": self.topology.delivery_limit},
            )
        except aiormq.exceptions.ChannelPreconditionFailed as exc:
            if "x-message-ttl" not in str(exc):
                raise
            raise DeclarationConflict(
                f"queue {queue!r} already exists on {self._url} with another delivery_limit "
                f"(classic queues record it in {marker!r} as x-message-ttl: {exc.args[0]}); "
                f"every App using it must be configured alike (App(delivery_limit=...)), or "
                f"delete both queues to change it"
            ) from exc


async def _closing_after(channel: aiormq.abc.AbstractChannel, steps: Declaration) -> Any:
    try:
        return await steps(channel)
    finally:
        if not channel.is_closed:  # within a bound: a broker that answered nothing may not now
            await asyncio.wait_for(channel.close(), CLOSE_PATIENCE)
