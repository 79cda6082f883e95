"""``Harness``: run Apps on a private memory broker, on a virtual clock, and assert on what
happened with awaitable, deadline-bounded checks instead of polling.

::

    async with Harness(app) as h:                      # every App on one private memory:// broker
        await h.app.enqueue("invoices.render", job, delay=3600)
        await h.settled("invoices.render")             # an hour passes in milliseconds
        [record] = h.handled(render)                    # what the handler got, and how it ended
        assert record.body == job and record.outcome == "acked"

The memory transport is the real one (acks, redelivery timers, dead letters, the delivery limit),
not a mock; the harness only listens to its broker (``MemoryBroker.taps``). Every wait is bounded
by ``timeout`` seconds of the loop's clock: on the virtual clock a wait that can never end fails
at once, in real time, when no timer is left to jump to.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

from pigeon.app import App
from pigeon.codecs.decoding import decoder_for
from pigeon.errors import DecodeError
from pigeon.handlers import HandlerSpec
from pigeon.message import Envelope, Message
from pigeon.patterns.rpc import Responder
from pigeon.testing.clock import virtual_clock
from pigeon.transports.checks import whole_number
from pigeon.transports.memory import MemoryTransport
from pigeon.transports.memory.topology import MemoryBroker, MemoryQueue, Tapped, discard_broker

VIRTUAL_TIMEOUT = 30 * 86_400.0
"""Default bound of a wait on the virtual clock: 30 days, virtual (milliseconds, real)."""

REAL_TIMEOUT = 10.0
"""Default bound of a wait on the real clock."""

Outcome = Literal["acked", "redelivered", "dead_lettered", "returned"]

_ANY = decoder_for(Any)


@dataclass(frozen=True, slots=True)
class Handled:
    """One delivery a handler got and how it ended.

    ``body``: decoded as the handler decodes it (``None`` if it could not be); ``attempt``: the
    broker's delivery count (1 first; a worker's ``Retry`` calls within one delivery share it,
    while ``Message.attempt`` in the handler counts every call); ``outcome``: ``acked``,
    ``redelivered``, ``dead_lettered`` or ``returned`` (its subscription closed first); ``at``:
    loop time, seconds. A subscriber or rpc handler that raised is ``acked`` too (the failure
    is logged, the event is not redelivered): assert on the log (pytest's ``caplog``).
    """

    body: Any
    message: Message
    attempt: int
    outcome: Outcome
    at: float


@dataclass(frozen=True, slots=True)
class Sent:
    """One event published or job enqueued: ``body`` decoded by content type (JSON as Python
    values, Protobuf as its message), ``delay`` in seconds (jobs), ``at`` loop time."""

    subject: str
    body: Any
    message: Message
    delay: float
    at: float


class Harness:
    """Runs ``apps`` on one private ``memory://`` broker, with a virtual clock by default.

    ``clock``: ``"virtual"`` (needs the ``testing`` extra) or ``"real"``. ``timeout``: the default
    bound of every wait, seconds of the loop's clock (``VIRTUAL_TIMEOUT`` / ``REAL_TIMEOUT``).
    ``max_message_size``: bytes, the largest body the broker takes (default: an App on
    ``memory://`` keeps its own, others get the memory transport's 8 MiB); give your broker's
    (NATS: 1 MiB) so that a test sending more fails with ``MessageTooLarge`` as production would
    (``ConfigurationError`` here for a value that is not a whole number of 1 or more). Entering
    swaps each App's transport for the private broker's and starts the Apps; leaving closes them
    and forgets the broker. The Apps' own URLs are not used.
    """

    def __init__(
        self,
        *apps: App,
        clock: Literal["virtual", "real"] = "virtual",
        timeout: float | None = None,
        max_message_size: int | None = None,
    ) -> None:
        if not apps:
            raise ValueError("Harness(app, ...): give at least one App")
        self.apps = apps
        self.clock = clock
        self.timeout = timeout or (VIRTUAL_TIMEOUT if clock == "virtual" else REAL_TIMEOUT)
        self.url = f"memory://harness-{uuid.uuid4().hex[:12]}"
        if max_message_size is not None:
            whole_number("max_message_size", max_message_size)
        self._max_message_size = max_message_size
        self._handled: list[tuple[object, Tapped, Outcome, float]] = []
        self._sent: list[tuple[Tapped, float]] = []
        self._changed = asyncio.Event()
        self._clock: contextlib.ExitStack | None = None
        self._broker: MemoryBroker | None = None

    @property
    def app(self) -> App:
        """The first App."""
        return self.apps[0]

    @property
    def broker(self) -> MemoryBroker:
        """The private memory broker (queues, dead letters) while the harness runs."""
        if self._broker is None:
            raise RuntimeError("the harness is not running: use 'async with Harness(...)'")
        return self._broker

    async def __aenter__(self) -> Harness:
        self._clock = contextlib.ExitStack()
        if self.clock == "virtual":
            self._clock.enter_context(virtual_clock())
        for app in self.apps:
            size = self._max_message_size or getattr(app.transport, "max_message_size", None)
            options = {} if size is None else {"max_message_size": size}
            app.url = self.url
            app.transport = MemoryTransport(self.url, app.settings, options)
        transport = self.apps[0].transport
        assert isinstance(transport, MemoryTransport)
        self._broker = transport.broker
        self._broker.taps.append(self._tap)
        try:
            for app in self.apps:
                await app.start()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for app in self.apps:
            app.shutdown_timeout = min(app.shutdown_timeout, 1.0)
            await app.close()
        discard_broker(self.url.removeprefix("memory://"))
        if self._clock is not None:
            self._clock.close()

    # -- what happened ---------------------------------------------------------------------

    def handled(self, handler: Callable[..., Any]) -> list[Handled]:
        """Every delivery ``handler`` (the decorated function) got so far, settled, in order.
        Raises ``ValueError`` if ``handler`` is not a handler of these Apps (a typo would wait
        out every ``wait_handled``)."""
        if not any(h.handler.fn is handler for app in self.apps for h in app.handlers):
            name = getattr(handler, "__qualname__", repr(handler))
            raise ValueError(
                f"{name} is not a handler of the harness's Apps: pass the decorated function "
                "itself (App.handlers lists them: handlers[i].handler.fn)"
            )
        records = []
        for owner, tapped, outcome, at in self._handled:
            spec = _spec_of(owner)
            if spec is not None and spec.fn is handler:
                body = _decoded(spec, tapped.envelope)
                message = Message.of(tapped.envelope, tapped.address, tapped.attempt)
                records.append(Handled(body, message, tapped.attempt, outcome, at))
        return records

    def published(self, subject: str) -> list[Sent]:
        """Every event published on ``subject`` (exact subject) so far, in order."""
        return self._sent_as("published", subject)

    def enqueued(self, queue: str) -> list[Sent]:
        """Every job enqueued on ``queue`` so far (replays not included), in order."""
        return self._sent_as("enqueued", queue)

    async def dead_letters(self, queue: str) -> list[Message]:
        """The dead letters of ``queue`` now, each with its ``failure``."""
        return await self.app.dead_letters(queue)

    # -- waiting ---------------------------------------------------------------------------

    async def settled(self, *queues: str, timeout: float | None = None) -> None:
        """Wait until every job of ``queues`` (all work queues if none given) is acked or
        dead-lettered: none ready, none waiting for a delay, none in a handler.

        Raises ``AssertionError`` after ``timeout`` seconds, saying what is left.
        """

        def pending() -> str:
            return "; ".join(_pending(q) for q in self._work_queues(queues) if _pending(q))

        await self.wait(lambda: not pending(), timeout, lambda: f"jobs not settled: {pending()}")

    async def wait_handled(
        self, handler: Callable[..., Any], count: int = 1, timeout: float | None = None
    ) -> list[Handled]:
        """Wait until ``handler`` has settled ``count`` deliveries; return its records."""
        name = getattr(handler, "__qualname__", repr(handler))
        await self.wait(
            lambda: len(self.handled(handler)) >= count,
            timeout,
            lambda: f"{name} settled {len(self.handled(handler))} of {count} deliveries",
        )
        return self.handled(handler)

    async def wait(
        self,
        condition: Callable[[], bool],
        timeout: float | None = None,
        what: Callable[[], str] | str = "the condition",
    ) -> None:
        """Wait until ``condition()`` holds, checked whenever the broker does something; raise
        ``AssertionError`` naming ``what`` after ``timeout`` seconds of the loop's clock."""
        timeout = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(timeout):
                while not condition():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            text = what() if callable(what) else what
            raise AssertionError(f"waited {timeout:.10g}s (loop time): {text}") from None

    async def sleep(self, seconds: float) -> None:
        """Let ``seconds`` of the loop's clock pass (virtual: at once)."""
        await asyncio.sleep(seconds)

    # -- internals -------------------------------------------------------------------------

    def _tap(self, tapped: Tapped) -> None:
        now = asyncio.get_running_loop().time()
        if tapped.kind in ("published", "enqueued"):
            self._sent.append((tapped, now))
        elif tapped.kind in ("acked", "redelivered", "dead_lettered", "returned"):
            owner = self._owner(tapped)
            self._handled.append((owner, tapped, tapped.kind, now))  # type: ignore[arg-type]
        self._changed.set()

    def _owner(self, tapped: Tapped) -> object:
        """The pattern object (``Worker``, ``Subscriber``, ``Responder``) behind a delivery."""
        owner = getattr(tapped.handler, "__self__", None)
        if owner is not None:
            return owner
        queue = tapped.queue
        for app in self.apps:
            for startable in app.handlers:
                if (
                    isinstance(startable, Responder)
                    and queue
                    and queue.pattern == startable.subject
                ):
                    return startable
        return None

    def _sent_as(self, kind: str, address: str) -> list[Sent]:
        records = []
        for tapped, at in self._sent:
            if tapped.kind == kind and tapped.address == address:
                message = Message.of(tapped.envelope, address)
                body = _decoded(None, tapped.envelope)
                records.append(Sent(address, body, message, tapped.delay, at))
        return records

    def _work_queues(self, names: tuple[str, ...]) -> list[MemoryQueue]:
        broker = self.broker
        if not names:
            return [q for key, q in broker.queues.items() if key.startswith("work:")]
        found = (broker.existing_work_queue(name) for name in names)
        return [queue for queue in found if queue is not None]


def _spec_of(owner: object) -> HandlerSpec | None:
    spec = getattr(owner, "handler", None)
    return spec if isinstance(spec, HandlerSpec) else None


def _decoded(spec: HandlerSpec | None, envelope: Envelope) -> Any:
    try:
        if spec is not None:
            return spec.decode_body(envelope)
        return _ANY(envelope.body, envelope.content_type, envelope.headers)
    except DecodeError:
        return None


def _pending(queue: MemoryQueue) -> str:
    parts = [
        f"{count} {what}"
        for count, what in (
            (
                len(queue.ready) + queue.handing,
                "ready" + ("" if queue.consumers else " (no worker consumes it)"),
            ),
            (queue.delayed, "waiting for a delay"),
            (queue.in_flight, "in a handler"),
        )
        if count
    ]
    return f"{queue.name}: {', '.join(parts)}" if parts else ""
