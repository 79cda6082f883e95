"""``memory://``: the embedded transport, with real acks, redelivery, delays and dead letters.

It gives the same semantics as the broker transports (the conformance suite runs on it), so it is
both the default for a single process and a faithful test harness. ``memory://name`` selects a
broker by name; every App of a process with the same URL shares it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pigeon.errors import BrokerError, ConfigurationError
from pigeon.message import Envelope, new_id
from pigeon.transports.base import Handler, QueueSettings, Transport
from pigeon.transports.checks import unknown_options, whole_number
from pigeon.transports.limits import check_body, check_headers
from pigeon.transports.memory.consumer import MemorySubscription
from pigeon.transports.memory.events import MemoryEvents
from pigeon.transports.memory.jobs import MemoryJobs
from pigeon.transports.memory.requests import INBOX_PREFIX, MemoryRequests
from pigeon.transports.memory.topology import Item, MemoryQueue, broker_named
from pigeon.transports.replies import ReplyMap
from pigeon.transports.slow import SlowConsumers
from pigeon.transports.urls import mask_url

MAX_MESSAGE_SIZE = 8 * 1024 * 1024
"""Default ``max_message_size``, bytes: Redis's, the other transport pigeon itself bounds."""


class MemoryTransport:
    """The in-process transport; see ``pigeon.transports.base.Transport`` for the contract.

    Options: ``queue_capacity`` (``docs/transports/memory.md``) and ``max_message_size`` in bytes
    (default 8 MiB): a bigger body is refused at send with ``MessageTooLarge``, as a broker
    would; give your broker's limit (NATS: its ``max_payload``, 1 MiB by default) to have tests
    on memory catch what it would refuse.
    """

    def __init__(self, url: str, settings: QueueSettings, options: dict[str, Any]) -> None:
        known = ("queue_capacity", "max_message_size")
        if (error := unknown_options("memory://", options, known)) is not None:
            raise error
        capacity = options.get("queue_capacity")
        self.max_message_size = whole_number(
            "max_message_size", options.get("max_message_size", MAX_MESSAGE_SIZE)
        )
        self.url = mask_url(url)
        try:
            parts = urlsplit(url)
        except ValueError:  # an unmatched '[' or ']': urlsplit's own text is not masked
            raise ConfigurationError(f"bad memory URL {self.url!r}; give memory://name") from None
        self.settings = settings
        self.broker = broker_named(parts.netloc + parts.path or "default")
        if capacity is not None:
            self.broker.capacity = whole_number("queue_capacity", capacity)
        self.inbox = f"{INBOX_PREFIX}{new_id()}"
        self.replies = ReplyMap()
        self._subscriptions: list[MemorySubscription] = []
        self.slow_consumers = SlowConsumers(self.url)
        self.connected = False
        self.events = MemoryEvents(self)
        self.requests = MemoryRequests(self)
        self.jobs = MemoryJobs(self)

    @property
    def dropped_events(self) -> Mapping[str, int]:
        """Events lost since the start, by subscription subject: those a plain subscription or
        a group's last member held when it closed (publishers wait for room: none is dropped
        for being slow)."""
        return self.slow_consumers.dropped

    async def connect(self) -> None:
        self.broker.inboxes[self.inbox] = self.replies
        self.connected = True

    async def close(self) -> None:
        if not self.connected:
            return
        self.connected = False
        for subscription in self._subscriptions:
            await subscription.close(0)
        self._subscriptions.clear()
        self.broker.inboxes.pop(self.inbox, None)
        self.replies.fail_all(BrokerError(f"{self.url}: connection closed"))

    def start(
        self,
        queue: MemoryQueue,
        handler: Handler,
        concurrency: int,
        hand_on: Callable[[Item], None] | None = None,
    ) -> MemorySubscription:
        """Consume ``queue`` with ``handler``; the subscription is closed with the transport
        (``hand_on``: see ``MemorySubscription``)."""
        subscription = MemorySubscription(
            self.broker, queue, handler, concurrency, self.slow_consumers, hand_on
        )
        self._subscriptions.append(subscription)
        return subscription

    def check(self, envelope: Envelope | None = None) -> None:
        """Raise ``BrokerError`` unless connected, ``MessageTooLarge`` for a body over
        ``max_message_size`` or headers over ``MAX_HEADER_BYTES`` (as on every broker, so tests on
        memory catch them)."""
        if not self.connected:
            raise BrokerError.not_connected(self.url)
        if envelope is None:
            return
        check_body(envelope.body, self.max_message_size, self.url)
        if envelope.headers:
            check_headers(envelope.headers, self.url)


if TYPE_CHECKING:  # mypy proves the transport offers the seam

    def _conforms(transport: MemoryTransport) -> Transport:
        return transport
