"""The transport seam: the only place pigeon touches a broker.

Patterns are written once against ``Transport`` and ``Delivery``; a transport never imports a
pattern. Everything crossing the seam is pigeon's own type (``Envelope``, ``Failure``) and every
error is one of ``pigeon.errors``: a transport translates its client's exceptions here.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from pigeon.message import Envelope, Failure


class Delivery(Protocol):
    """One received message, handed to exactly one handler call.

    ``attempt`` is the delivery count, 1 on the first delivery, counted by the broker so that it
    survives restarts. A delivery is settled by one of ``ack``, ``redeliver`` or ``dead_letter``;
    one left unsettled when its subscription closes goes back to the broker and is delivered again
    (``attempt`` + 1). Settling pub-sub deliveries is a no-op unless the subscription is durable.
    """

    envelope: Envelope
    subject: str
    attempt: int

    async def ack(self) -> None:
        """Tell the broker the message is done; it is never delivered again."""
        ...

    async def redeliver(self, delay: float) -> None:
        """Hand the message back to be delivered again after ``delay`` seconds, ``attempt`` + 1.

        Frees the worker's slot at once; the wait happens on the broker (or the memory broker's
        timer), so it survives the worker's restart.
        """
        ...

    async def dead_letter(self, failure: Failure) -> None:
        """Move the message, with ``failure`` in its headers, to its queue's dead-letter store.

        Returns once the store has confirmed it; only then is the original removed, so a crash in
        between leaves a duplicate at worst, never a loss.
        """
        ...


Handler = Callable[[Delivery], Coroutine[Any, Any, None]]
"""What a transport calls for each delivery. It must not raise; patterns settle every delivery."""


class Subscription(Protocol):
    """A running subscription or consumer."""

    async def close(self, timeout: float) -> None:
        """Stop taking deliveries at once, wait up to ``timeout`` seconds for handlers in flight,
        then cancel those still running and return their deliveries to the broker unsettled.

        Idempotent.
        """
        ...


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """Broker-side settings of every work queue of an App.

    They come from the App, never from one handler, so producer and worker declare a queue alike.
    ``delivery_limit``: deliveries after which a message that never got settled (its worker kept
    dying) is dead-lettered instead of delivered again.
    """

    delivery_limit: int = 10


class Transport(Protocol):
    """A connection to one broker, offering the primitives the patterns need.

    Subjects are dot-separated tokens with NATS wildcards (``*`` one token, ``>`` the rest); a
    transport translates them to its broker's syntax. Methods other than ``connect`` raise
    ``BrokerError`` when the connection is down for good.
    """

    url: str
    """The URL it was made from, password masked: safe to log."""

    @property
    def connected(self) -> bool:
        """Whether the connection to the broker is up now (false before ``connect``, while
        reconnecting, and after ``close``)."""
        ...

    async def connect(self) -> None:
        """Connect; raises ``BrokerError`` naming the (masked) URL if the broker is unreachable."""
        ...

    async def close(self) -> None:
        """Close the connection. Unsettled deliveries go back to the broker. Idempotent."""
        ...

    async def publish(self, subject: str, envelope: Envelope) -> None:
        """Publish an event; returns once the broker has accepted it.

        Raises ``MessageTooLarge`` over the broker's size limit.
        """
        ...

    async def subscribe(
        self,
        subject: str,
        handler: Handler,
        *,
        group: str | None,
        durable: str | None,
        concurrency: int,
    ) -> Subscription:
        """Call ``handler`` for events on ``subject`` (wildcards allowed), at most ``concurrency``
        at once.

        Without ``group`` every subscription gets every event; with one, each event goes to one
        subscription of the group. ``durable`` names a subscription whose events the broker keeps
        while it is closed. Returns once the broker will deliver to it.
        """
        ...

    async def serve(self, subject: str, handler: Handler, *, concurrency: int) -> Subscription:
        """Receive requests sent to ``subject``, shared among every server of that subject.

        The handler answers through ``reply``. A server's requests are never kept for it while it
        is closed: with no server running, requests fail with ``NoResponders``.
        """
        ...

    async def request(self, subject: str, envelope: Envelope, timeout: float) -> Envelope:
        """Send a request and return the reply with the same correlation id.

        Concurrent requests share one reply subscription and never wait for each other. Raises
        ``NoResponders`` at once when nobody serves ``subject``, ``RequestTimeout`` after
        ``timeout`` seconds.
        """
        ...

    async def reply(self, reply_to: str, envelope: Envelope) -> None:
        """Send ``envelope`` to the reply address a request carried. A caller that has gone away
        is not an error: the reply is dropped."""
        ...

    async def enqueue(self, queue: str, envelope: Envelope) -> None:
        """Store a job on the work queue ``queue``, declaring it on first use.

        Returns once the broker has stored it durably (confirm / PubAck).
        """
        ...

    async def consume(self, queue: str, handler: Handler, *, concurrency: int) -> Subscription:
        """Call ``handler`` for jobs of ``queue``, at most ``concurrency`` at once, shared with
        every other consumer of the queue. Takes no more jobs from the broker than it has free
        slots."""
        ...

    async def dead_letters(self, queue: str, limit: int | None = None) -> list[Envelope]:
        """Return (without removing) up to ``limit`` dead letters of ``queue``, oldest first."""
        ...

    async def replay_dead_letters(self, queue: str, limit: int | None = None) -> int:
        """Move up to ``limit`` dead letters back onto ``queue``, failure headers removed.

        Each is removed from the dead-letter store only once stored on the work queue. Returns how
        many moved.
        """
        ...

    async def purge_dead_letters(self, queue: str) -> int:
        """Delete every dead letter of ``queue``; returns how many."""
        ...


TransportFactory = Callable[[str, QueueSettings, dict[str, Any]], Transport]
"""Builds a transport from a URL, the App's queue settings and the client's own options."""
