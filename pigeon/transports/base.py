"""The transport seam: the only place pigeon touches a broker.

Three small protocols, one per pattern: ``Events`` (publish-subscribe), ``Requests``
(request-reply) and ``Jobs`` (work pool and its dead letters). A ``Transport`` is one connection
offering all three (``transport.events``, ``.requests``, ``.jobs``) plus its lifecycle. Patterns
type against the protocol they use and never import a transport; a transport never imports a
pattern. Everything crossing the seam is pigeon's own type (``Envelope``, ``Failure``) and every
error is one of ``pigeon.errors``: a transport translates its client's exceptions here.

Subjects are dot-separated tokens with NATS wildcards (``*`` one token, ``>`` the rest); a
transport translates them to its broker's syntax. Every method but ``connect`` raises
``BrokerError`` while the transport is not connected (``BrokerError.not_connected``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pigeon import subjects
from pigeon.errors import ConfigurationError
from pigeon.message import Envelope, Failure


class Delivery(Protocol):
    """One received message, handed to exactly one handler call.

    ``attempt`` is the delivery count, 1 on the first delivery, counted by the broker so that it
    survives restarts. ``returns`` is how many earlier deliveries ended unsettled (their worker
    stopped or died), or ``None`` where the broker cannot tell those from redeliveries asked for
    (JetStream counts both alike). A delivery is settled by one of ``ack``, ``redeliver`` or
    ``dead_letter``; one left unsettled when its subscription closes goes back to the broker and is
    delivered again (``attempt`` + 1). Settling pub-sub deliveries is a no-op unless the
    subscription is durable. Settling a delivery twice is a no-op.
    """

    envelope: Envelope
    subject: str
    attempt: int

    @property
    def returns(self) -> int | None:
        """Earlier deliveries that ended unsettled; ``None`` where the broker cannot tell."""
        ...

    def ack(self) -> Awaitable[None] | None:
        """Tell the broker the message is done; it is never delivered again.

        Returns ``None`` when that was done at the call (the memory broker; a delivery whose ack
        is a no-op, such as a plain subscription's on NATS or Redis), else an awaitable to await
        before the message counts as done: ``if (acking := delivery.ack()) is not None: await
        acking``. An ``async def ack`` fits. Its awaitable raises ``BrokerError`` only when the
        broker cannot be told and the message will come again; an ack for a delivery the broker
        already took back is skipped silently.
        """
        ...

    async def redeliver(self, delay: float) -> None:
        """Hand the message back to be delivered again after ``delay`` seconds, ``attempt`` + 1.

        Frees the worker's slot at once; the wait happens on the broker (or the memory broker's
        timer), so it survives the worker's restart. Raises ``BrokerError`` if the broker cannot
        take it back; the message is then delivered again, sooner.
        """
        ...

    async def dead_letter(self, failure: Failure) -> None:
        """Move the message, with ``failure`` in its headers, to its queue's dead-letter store.

        Returns once the store has confirmed it; only then is the original removed, so a crash in
        between leaves a duplicate at worst, never a loss. Raises ``BrokerError`` when the store
        fails; the original then goes back to its queue. A delivery of a subscription (no queue)
        is logged and dropped instead.
        """
        ...


Handler = Callable[[Delivery], Coroutine[Any, Any, None]]
"""What a transport calls for each delivery. It must not raise; patterns settle every delivery."""

DirectCall = tuple[
    Callable[[bytes, str, Mapping[str, str]], Any],
    Callable[[Any], Awaitable[Any]],
    Callable[[Delivery, BaseException], None],
]
"""``(decode, fn, failed)``: what a pattern may offer beside its ``Handler``, for a transport
that calls handlers one after the other in a loop of its own (memory's pump) to make the call
without the pattern's coroutine: ``await fn(decode(body, content_type, headers))``, then
``ack``; if either raises, ``failed(delivery, error)`` (which logs it, or re-raises an error
that stops the handler) and then ``ack``. Offered only where that is all ``Handler`` would do."""


def direct_call(handler: Handler) -> DirectCall | None:
    """The ``DirectCall`` the pattern whose bound method ``handler`` is offers as its
    ``direct`` attribute, or ``None``."""
    direct: DirectCall | None = getattr(getattr(handler, "__self__", None), "direct", None)
    return direct


class Subscription(Protocol):
    """A running subscription or consumer."""

    async def close(self, timeout: float) -> None:
        """Stop taking deliveries at once, wait up to ``timeout`` seconds for handlers in flight,
        then cancel those still running and return their deliveries to the broker unsettled.

        Idempotent; never raises.
        """
        ...


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """Broker-side settings of every work queue of an App.

    They come from the App, never from one handler, so producer and worker declare a queue alike.
    ``delivery_limit``: returns (deliveries that ended unsettled because the worker kept dying)
    after which a message is dead-lettered instead of delivered again. ``passive``: declare
    nothing shared on the broker, use what exists as it is, and raise ``ConfigurationError``
    naming what is missing (see ``docs/wire.md`` for what each broker needs).
    """

    delivery_limit: int = 10
    passive: bool = False

    def __post_init__(self) -> None:
        limit = self.delivery_limit
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError(
                f"delivery_limit={limit!r}: give an int of 1 or more (deliveries a job may end "
                "unsettled before it is dead-lettered; the default is 10)"
            )


@dataclass(frozen=True, slots=True)
class Backlog:
    """What is waiting on a work queue, as its broker reports it at the moment of the call.

    ``ready``: jobs waiting for a worker (due now; delayed jobs and those waiting for a
    ``Redeliver`` delay are not counted). ``unacked``: jobs handed to a worker and not settled
    yet. ``dead_letters``: jobs in the queue's dead-letter store. ``consumers``: workers taking
    jobs from the queue, all Apps together. ``oldest_age``: seconds since the job at the head of
    the queue (the next to be handed out) was stored; 0.0 when nothing is ready. Each is ``None``
    where the broker cannot tell (``docs/backlog.md`` says which, per transport): unknown, never
    a made-up 0.
    """

    ready: int | None
    unacked: int | None
    dead_letters: int | None
    consumers: int | None
    oldest_age: float | None


def in_process(url: str) -> str:
    """What a user asking another process's memory broker needs to hear, else ``""``."""
    if not url.startswith("memory:"):
        return ""
    return (
        ". memory:// lives inside one process: a command run apart from the App, such as "
        "'pigeon status' or 'pigeon dlq', sees an empty broker of its own; run the App on "
        "NATS, RabbitMQ or Redis (PIGEON_URL) to watch it from outside"
    )


def unknown_queue(queue: str, url: str) -> ConfigurationError:
    """The error of ``Jobs.backlog`` for a work queue the broker does not have."""
    return ConfigurationError(
        f"work queue {queue!r} does not exist on {url}: no producer or worker has declared it. "
        f"Check the name, or enqueue to it (or start its worker) first{in_process(url)}"
    )


def unknown_durable(subject: str, durable: str, url: str) -> ConfigurationError:
    """The error of ``Events.backlog`` for a durable subscription the broker does not have."""
    return ConfigurationError(
        f"durable subscription {durable!r} of {subject!r} does not exist on {url}: no "
        "subscriber has started it. Check the name and subject, or start its subscriber "
        f"once{in_process(url)}"
    )


class Events(Protocol):
    """Publish-subscribe: every subscription gets every event; a group shares them."""

    async def publish(self, subject: str, envelope: Envelope) -> None:
        """Publish an event; returns once the broker has accepted it (core NATS: once it is in
        the client's buffer, as core NATS has no acknowledgement).

        Raises ``MessageTooLarge`` over the broker's size limit, ``BrokerError`` when the broker
        refuses it or the connection is gone for longer than the transport's patience.
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
        max_pending: int | None = None,
    ) -> Subscription:
        """Call ``handler`` for events on ``subject`` (wildcards allowed), at most ``concurrency``
        at once.

        Without ``group`` every subscription gets every event; with one, each event goes to one
        subscription of the group. ``durable`` names a subscription whose events the broker keeps
        while it is closed. ``max_pending`` (at least ``concurrency``; ``None``: the transport's
        default): the most events the subscription holds in this process, delivered and not
        handled yet, those in its handlers included. Beyond it the broker keeps them (durable
        subscriptions, RabbitMQ, Redis groups), memory's ``publish`` waits for room, core NATS
        and Redis Pub/Sub drop them and count them in the transport's ``dropped_events``. Memory
        and core NATS always keep room for one event waiting besides those being handled (core
        NATS above ``concurrency=1``: two, one in its callback), so they may hold that many more
        than ``concurrency`` whatever a smaller ``max_pending`` says.

        Returns once the broker will deliver to it. Raises ``DeclarationConflict`` when a durable
        subscription exists with other settings, ``BrokerError`` when the broker refuses.
        """
        ...

    async def backlog(self, subject: str, durable: str) -> Backlog:
        """Return what the broker keeps for the durable subscription ``durable`` of ``subject``
        now (see ``Backlog``), declaring nothing.

        ``ready``: events kept for it, not delivered yet; ``unacked``: delivered, not settled;
        ``dead_letters`` is ``None`` (subscriptions have no dead-letter store); ``consumers``
        and ``oldest_age`` where the broker can tell (``docs/backlog.md``). Takes, moves and
        reorders nothing. Raises ``ConfigurationError`` naming it when the broker does not have
        it (no subscriber ever started it), ``BrokerError`` when the broker cannot answer.
        """
        ...


class Requests(Protocol):
    """Request-reply: one server of a subject answers each request."""

    async def serve(self, subject: str, handler: Handler, *, concurrency: int) -> Subscription:
        """Receive requests sent to ``subject``, shared among every server of that subject.

        The handler answers through ``reply``. A server's requests are never kept for it while it
        is closed: with no server running, requests fail with ``NoResponders``. Raises
        ``BrokerError`` when the broker refuses.
        """
        ...

    async def request(self, subject: str, envelope: Envelope, timeout: float) -> Envelope:
        """Send a request and return the reply with the same correlation id.

        ``envelope.correlation_id`` is set by the caller. Concurrent requests share one reply
        subscription and never wait for each other. Raises ``NoResponders`` at once when nobody
        serves ``subject``, ``RequestTimeout`` after ``timeout`` seconds, ``MessageTooLarge`` over
        the size limit, ``BrokerError`` when the connection closes while it waits.
        """
        ...

    async def reply(self, reply_to: str, envelope: Envelope) -> None:
        """Send ``envelope`` to the reply address a request carried. A caller that has gone away
        is not an error: the reply is dropped. Raises ``MessageTooLarge`` over the size limit,
        ``BrokerError`` when the connection is gone."""
        ...


class Jobs(Protocol):
    """Work pool: durable jobs on named queues, shared by competing consumers, and the queues'
    dead-letter stores."""

    async def enqueue(self, queue: str, envelope: Envelope, *, delay: float = 0.0) -> None:
        """Store a job on the work queue ``queue``, declaring it on first use, to be handed to a
        worker no earlier than ``delay`` seconds from now (0 or less: at once).

        Returns once the broker has stored it durably (confirm / PubAck), a delayed job too: it
        waits on the broker (the memory broker's timer), never in the sender or a worker, so it
        survives their restarts. Jobs fall due in the order of their due times, within the
        broker's precision (see each transport's page). Raises ``MessageTooLarge`` over the size
        limit, ``DeclarationConflict`` when the queue exists with other settings, ``BrokerError``
        when it may not have been stored (at-least-once: sending again may store it twice).
        """
        ...

    async def consume(self, queue: str, handler: Handler, *, concurrency: int) -> Subscription:
        """Call ``handler`` for jobs of ``queue``, at most ``concurrency`` at once, shared with
        every other consumer of the queue. Takes no more jobs from the broker than it has free
        slots. Raises ``DeclarationConflict`` / ``BrokerError`` as ``enqueue``."""
        ...

    async def dead_letters(self, queue: str, limit: int | None = None) -> list[Envelope]:
        """Return (without removing) up to ``limit`` dead letters of ``queue``, oldest first.

        An unknown queue has none."""
        ...

    async def replay_dead_letters(self, queue: str, limit: int | None = None) -> int:
        """Move up to ``limit`` dead letters back onto ``queue``, failure headers removed.

        Each is removed from the dead-letter store only once stored on the work queue. Returns how
        many moved. With no dead letters, declares nothing and returns 0. Raises ``BrokerError``
        when a move fails; those moved before it stay moved.
        """
        ...

    async def purge_dead_letters(self, queue: str) -> int:
        """Delete every dead letter of ``queue``; returns how many."""
        ...

    async def backlog(self, queue: str) -> Backlog:
        """Return what waits on the work queue ``queue`` now (see ``Backlog``), declaring nothing.

        Costs the broker a few reads (``docs/backlog.md``), none of which takes, moves or reorders
        a job. Raises ``ConfigurationError`` naming the queue when it does not exist on the broker
        (no producer or worker ever declared it), ``BrokerError`` when the broker cannot answer.
        """
        ...


class Transport(Protocol):
    """A connection to one broker offering the three protocols.

    ``events``, ``requests`` and ``jobs`` share the connection; each pattern uses one of them.
    """

    url: str
    """The URL it was made from, every password masked: safe to log."""

    @property
    def events(self) -> Events:
        """Publish-subscribe on this connection."""
        ...

    @property
    def requests(self) -> Requests:
        """Request-reply on this connection."""
        ...

    @property
    def jobs(self) -> Jobs:
        """Work queues and dead letters on this connection."""
        ...

    @property
    def connected(self) -> bool:
        """Whether the connection to the broker is up now (false before ``connect``, while
        reconnecting, and after ``close``)."""
        ...

    async def connect(self) -> None:
        """Connect; raises ``BrokerError`` naming the (masked) URL if the broker is unreachable
        or refuses the credentials. Connecting a connected transport does nothing."""
        ...

    async def close(self) -> None:
        """Close every subscription (deliveries in flight go back to the broker unsettled), fail
        every request still waiting with ``BrokerError``, and disconnect. Idempotent; never
        raises."""
        ...


def check_route(transport: object, kind: str, subject: str, durable: str | None = None) -> None:
    """Raise ``ConfigurationError`` for a handler's subject (``kind``: ``subscribe``, ``rpc`` or
    ``worker``) that pigeon (``subjects.validate``) or the transport's broker cannot carry: a
    transport whose broker allows less than pigeon does offers ``check_route(kind, subject,
    durable)`` (RabbitMQ: AMQP's 255-byte routing keys), run here, where the handler is added."""
    if kind == "subscribe":
        subjects.validate(subject, wildcards=True)
    else:  # they name queues on RabbitMQ
        subjects.validate_queue(subject, wildcards=kind == "rpc")
    check = getattr(transport, "check_route", None)
    if check is not None:
        check(kind, subject, durable)
