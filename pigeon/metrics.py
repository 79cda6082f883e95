"""Prometheus metrics (extra ``pigeon[prometheus]``), as a middleware: counters per outcome,
handler durations, message ages at receipt, RPC client latency, labelled by pattern and subject or
queue; and the backlog gauges of work queues that ``pigeon run`` samples (``record_backlog``)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pigeon import subjects
from pigeon.errors import ConfigurationError
from pigeon.message import Message
from pigeon.middleware import CallNext, Outcome
from pigeon.transports.base import Backlog

try:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
    from prometheus_client.core import CounterMetricFamily, Metric
    from prometheus_client.registry import Collector
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
    raise ConfigurationError(
        "metrics need the prometheus extra: pip install 'pigeon[prometheus]'"
    ) from exc

log = logging.getLogger("pigeon")

LABELS = ("pattern", "subject")

REQUEST_SUBJECTS = 50
"""Request subjects ``pigeon_request_duration_seconds`` labels by their own name, by default:
the first so many a process sends to that no ``request_subjects`` pattern matches. Later ones
are labelled ``OTHER``, so that subjects carrying an id cannot make a series per id."""

OTHER = "other"
"""The ``subject`` label of requests beyond ``max_request_subjects``."""

AGE_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0)
"""Buckets of ``pigeon_message_age_seconds``: from a message handled at once to one a day old."""

BACKLOG_GAUGES = {
    "ready": ("pigeon_queue_ready", "Jobs waiting for a worker"),
    "unacked": ("pigeon_queue_unacked", "Jobs handed to a worker and not settled yet"),
    "dead_letters": ("pigeon_dead_letters", "Jobs in the queue's dead letters"),
    "consumers": ("pigeon_queue_consumers", "Workers taking jobs from the queue"),
    "oldest_age": ("pigeon_queue_oldest_age_seconds", "Age of the job at the queue's head"),
}
"""``Backlog`` field -> (gauge name, help) of the gauges ``record_backlog`` sets, by queue."""


class PrometheusMetrics:
    """A middleware that counts and times every handler call and every request.

    Metrics (labels ``pattern``, ``subject``: the subject or queue as the handler declared it):
    ``pigeon_messages_received_total`` (handler calls), ``..._processed_total`` (calls that
    returned), ``..._failed_total`` (calls that raised), ``..._retried_total`` (calls after the
    first for their message: in-process retries and redeliveries), ``..._redelivered_total`` and
    ``..._dead_lettered_total`` (deliveries of a worker's jobs settled that way),
    ``pigeon_handler_duration_seconds`` (histogram, seconds per call) and
    ``pigeon_message_age_seconds`` (histogram: now minus the message's timestamp when its
    handler is called, every delivery; the timestamp is the broker's store time on NATS, the
    sender's clock elsewhere, in whole seconds on RabbitMQ), ``pigeon_request_duration_seconds``
    (RPC client latency, labels ``subject``, ``outcome``: ``ok`` or the exception's type name;
    ``subject`` is the first of ``request_subjects``, patterns with wildcards, that matches the
    subject sent to, else the subject itself for the first ``max_request_subjects`` subjects,
    else ``other``, logged once: every label has a bounded set of values).
    Add it first (outermost) to count what other middleware does too. ``record_backlog`` sets
    the gauges of ``BACKLOG_GAUGES`` (label ``queue``); a number the broker cannot tell has no
    sample.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        request_subjects: Iterable[str] = (),
        max_request_subjects: int = REQUEST_SUBJECTS,
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self._requests = _RequestLabels(request_subjects, max_request_subjects)
        self.received = self._counter("received", "Handler calls")
        self.processed = self._counter("processed", "Handler calls that returned")
        self.failed = self._counter("failed", "Handler calls that raised")
        self.retried = self._counter("retried", "Handler calls after the first for a message")
        self.redelivered = self._counter("redelivered", "Jobs handed back for a later delivery")
        self.dead_lettered = self._counter("dead_lettered", "Jobs moved to the dead letters")
        self.duration = Histogram(
            "pigeon_handler_duration_seconds",
            "Time of one handler call",
            LABELS,
            registry=self.registry,
        )
        self.age = Histogram(
            "pigeon_message_age_seconds",
            "Seconds from a message's timestamp to its handler call",
            LABELS,
            registry=self.registry,
            buckets=AGE_BUCKETS,
        )
        self.backlog = {
            field: Gauge(name, description, ("queue",), registry=self.registry)
            for field, (name, description) in BACKLOG_GAUGES.items()
        }
        self._by_handler: dict[tuple[str, str], _Series] = {}
        self._counting_drops = False
        self.request_duration = Histogram(
            "pigeon_request_duration_seconds",
            "RPC client latency, from send to reply or error",
            ("subject", "outcome"),
            registry=self.registry,
        )

    def serve(self, port: int, address: str = "0.0.0.0") -> None:
        """Serve the metrics over HTTP on ``port`` (``/metrics``), from a background thread."""
        start_http_server(port, address, registry=self.registry)

    async def handle(self, message: Message, call_next: CallNext) -> Any:
        """Count the call, its outcome, and time it."""
        series = self._series(message.pattern, message.route)
        series.received.inc()
        series.age.observe(max(0.0, time.time() - message.timestamp))
        if message.attempt > 1:
            series.retried.inc()
        started = time.perf_counter()
        try:
            result = await call_next(message)
        except BaseException:
            series.failed.inc()
            raise
        finally:
            series.duration.observe(time.perf_counter() - started)
        series.processed.inc()
        return result

    async def settled(self, message: Message, outcome: Outcome) -> None:
        """Count the jobs redelivered and dead-lettered."""
        if outcome is Outcome.REDELIVERED:
            self._series(message.pattern, message.route).redelivered.inc()
        elif outcome is Outcome.DEAD_LETTERED:
            self._series(message.pattern, message.route).dead_lettered.inc()

    async def send(self, message: Message, call_next: CallNext) -> Any:
        """Time requests, from send to reply or error; other sends pass through."""
        if message.pattern != "request":
            return await call_next(message)
        started, outcome = time.perf_counter(), "ok"
        try:
            return await call_next(message)
        except Exception as exc:
            outcome = type(exc).__name__
            raise
        finally:
            elapsed = time.perf_counter() - started
            subject = self._requests.label(message.route)
            self.request_duration.labels(subject, outcome).observe(elapsed)

    def count_drops(self, app: Any) -> None:
        """Serve ``pigeon_events_dropped_total`` (label ``subject``, the subscription's subject
        as its handler declared it): events of ``app`` lost because a plain subscriber fell
        behind (core NATS: over its pending limits,
        https://docs.nats.io/running-a-nats-service/nats_admin/slow_consumers; Redis Pub/Sub:
        over its ``max_pending``) or closed while holding them. Read from
        ``app.transport.dropped_events`` at each scrape; transports that never drop have none.
        ``app.asgi()`` and ``pigeon run`` call it; a second call does nothing."""
        if self._counting_drops:
            return
        self._counting_drops = True
        self.registry.register(_Dropped(lambda: getattr(app.transport, "dropped_events", {})))

    def record_backlog(self, queue: str, backlog: Backlog) -> None:
        """Set the backlog gauges of ``queue``; a ``None`` field removes that gauge's sample."""
        for field, gauge in self.backlog.items():
            value = getattr(backlog, field)
            if value is not None:
                gauge.labels(queue).set(value)
            else:
                self._remove(gauge, queue)

    def forget_backlog(self, queue: str) -> None:
        """Remove every backlog sample of ``queue`` (its last read failed: no stale numbers)."""
        for gauge in self.backlog.values():
            self._remove(gauge, queue)

    @staticmethod
    def _remove(gauge: Gauge, queue: str) -> None:
        with contextlib.suppress(KeyError):  # never set
            gauge.remove(queue)

    def _series(self, pattern: str, subject: str) -> _Series:
        """The labelled children of one handler, looked up once (``labels()`` is slow)."""
        series = self._by_handler.get((pattern, subject))
        if series is None:
            series = self._by_handler[(pattern, subject)] = _Series(
                received=self.received.labels(pattern, subject),
                processed=self.processed.labels(pattern, subject),
                failed=self.failed.labels(pattern, subject),
                retried=self.retried.labels(pattern, subject),
                redelivered=self.redelivered.labels(pattern, subject),
                dead_lettered=self.dead_lettered.labels(pattern, subject),
                duration=self.duration.labels(pattern, subject),
                age=self.age.labels(pattern, subject),
            )
        return series

    def _counter(self, name: str, description: str) -> Counter:
        return Counter(f"pigeon_messages_{name}", description, LABELS, registry=self.registry)


class _RequestLabels:
    """The ``subject`` label of a request's series: its pattern, its subject, or ``OTHER``."""

    def __init__(self, patterns: Iterable[str], limit: int) -> None:
        if isinstance(patterns, str):
            raise ConfigurationError(
                f"request_subjects={patterns!r}: give a list of patterns "
                f"(request_subjects=[{patterns!r}]), not one string"
            )
        self._patterns = tuple(subjects.validate(p, wildcards=True) for p in patterns)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ConfigurationError(
                f"max_request_subjects={limit!r}: give an int of 0 or more (request subjects "
                f"labelled by name before the rest are {OTHER!r})"
            )
        self._limit = limit
        self._named: set[str] = set()  # the subjects labelled by name: at most ``limit``
        self._warned = False

    def label(self, subject: str) -> str:
        if subject in self._named:
            return subject
        pattern = next((p for p in self._patterns if subjects.matches(p, subject)), None)
        if pattern is not None:
            return pattern
        if len(self._named) < self._limit:
            self._named.add(subject)
            return subject
        self._warn(subject)
        return OTHER

    def _warn(self, subject: str) -> None:
        if self._warned:
            return
        self._warned = True
        log.warning(
            "pigeon: requests to %r and later new subjects are timed as subject=%r in "
            "pigeon_request_duration_seconds: %d subjects have a series of their own already; "
            'name the subjects\' patterns (PrometheusMetrics(request_subjects=["orders.*.get"]))',
            subject,
            OTHER,
            self._limit,
        )


class _Dropped(Collector):
    """``pigeon_events_dropped_total`` from a transport's running counts, at each scrape."""

    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "pigeon_events_dropped",
            "Events lost because a plain subscriber fell behind or closed holding them",
            labels=("subject",),
        )
        for subject, count in self._counts().items():
            family.add_metric([subject], count)
        yield family


@dataclass(frozen=True, slots=True)
class _Series:
    received: Counter
    processed: Counter
    failed: Counter
    retried: Counter
    redelivered: Counter
    dead_lettered: Counter
    duration: Histogram
    age: Histogram
