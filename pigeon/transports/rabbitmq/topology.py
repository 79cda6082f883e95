"""The exchanges and queues pigeon uses on RabbitMQ: their names, their arguments, declaring them.

Names are pure functions of the queue name, so producer, worker and operator agree on them:
``<queue>`` (work queue), ``<queue>.dlq`` (its dead letters) and ``<queue>.retry.<ms>`` (its
delayed redeliveries). A work queue's arguments come only from the App (``Topology``), never from
one handler, so every App declares it identically and a difference is a ``DeclarationConflict``.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiormq.abc
from aio_pika.abc import AbstractRobustConnection

from pigeon.errors import BrokerError, ConfigurationError, DeclarationConflict
from pigeon.transports.rabbitmq.errors import translated

QUEUE_TYPES = ("quorum", "classic")

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


def queue_name_for(text: str) -> str:
    """A valid queue name for ``text`` (a subject, maybe with wildcards): ``*`` becomes ``+`` and
    ``>`` becomes ``#``, as in MQTT; other invalid characters become ``_``, with a hash of
    ``text`` appended so that different subjects keep different queues."""
    name = text.replace("*", "+").replace(">", "#")
    ambiguous = name != text and ("+" in text or "#" in text)  # a literal '+' or '#' as well
    if _QUEUE_NAME.fullmatch(name) and not ambiguous:
        return name
    digest = hashlib.sha1(text.encode()).hexdigest()[:8]
    cleaned = re.sub(r"[^a-zA-Z0-9\-_.:@#,/+ ]", "_", name)[:180]
    return f"{cleaned}.{digest}"


def dead_letter_queue(queue: str) -> str:
    """The queue holding the dead letters of work queue ``queue``."""
    return f"{queue}.dlq"


def retry_queue(queue: str, delay_ms: int) -> str:
    """The queue where a job of ``queue`` waits ``delay_ms`` before going back to ``queue``."""
    return f"{queue}.retry.{delay_ms}"


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

    def retry_queue_arguments(self, queue: str, delay_ms: int) -> dict[str, Any]:
        """Messages expire after ``delay_ms`` and go back to ``queue`` via the default exchange;
        quorum retry queues dead-letter at least once (nothing lost if the broker fails)."""
        arguments: dict[str, Any] = {
            "x-queue-type": self.queue_type,
            "x-message-ttl": delay_ms,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": queue,
        }
        if self.quorum:
            arguments["x-dead-letter-strategy"] = "at-least-once"
            arguments["x-overflow"] = "reject-publish"
        return arguments

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
        self._done: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}

    def forget(self, queue: str) -> None:
        self._done.discard(f"queue:{queue}")

    async def exchange(self, name: str, kind: str) -> None:
        """Declare the durable exchange ``name`` of type ``kind``."""
        if f"exchange:{name}" in self._done:
            return

        async def declare(channel: aiormq.abc.AbstractChannel) -> None:
            await channel.exchange_declare(name, exchange_type=kind, durable=True)

        await self._once(f"exchange:{name}", f"declaring exchange {name!r}", declare)

    async def work_queue(self, queue: str) -> None:
        """Declare ``queue``, its dead-letter queue and their routing, as every App does."""
        if f"queue:{queue}" in self._done:
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

        await self._once(f"queue:{queue}", f"declaring work queue {queue!r}", declare)

    async def retry_queue(self, queue: str, delay_ms: int) -> str:
        """Declare the retry queue of ``queue`` for ``delay_ms``; return its name."""
        name = retry_queue(queue, delay_ms)
        if f"queue:{name}" in self._done:
            return name
        arguments = self.topology.retry_queue_arguments(queue, delay_ms)

        async def declare(channel: aiormq.abc.AbstractChannel) -> None:
            await channel.queue_declare(name, durable=True, arguments=arguments)

        await self._once(f"queue:{name}", f"declaring retry queue {name!r}", declare)
        return name

    async def run(self, action: str, steps: Declaration, *, confirms: bool = False) -> Any:
        """Run ``steps`` on a channel of their own (with publisher confirms if ``confirms``),
        errors translated."""
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
            channel = await transport.connection.channel(publisher_confirms=confirms)
            try:
                return await steps(channel)
            finally:
                if not channel.is_closed:
                    await channel.close()

    async def _once(self, key: str, action: str, steps: Declaration) -> None:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._done:
                await self.run(action, steps)
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
