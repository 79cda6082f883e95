"""Prometheus metrics (extra ``pigeon[prometheus]``), as a middleware: counters per outcome,
handler durations, RPC client latency, labelled by pattern and subject or queue."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pigeon.errors import ConfigurationError
from pigeon.message import Message
from pigeon.middleware import CallNext, Outcome

try:
    from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
    raise ConfigurationError(
        "metrics need the prometheus extra: pip install 'pigeon[prometheus]'"
    ) from exc

LABELS = ("pattern", "subject")


class PrometheusMetrics:
    """A middleware that counts and times every handler call and every request.

    Metrics (labels ``pattern``, ``subject``: the subject or queue as the handler declared it):
    ``pigeon_messages_received_total`` (handler calls), ``..._processed_total`` (calls that
    returned), ``..._failed_total`` (calls that raised), ``..._retried_total`` (calls after the
    first for their message: in-process retries and redeliveries), ``..._redelivered_total`` and
    ``..._dead_lettered_total`` (deliveries of a worker's jobs settled that way),
    ``pigeon_handler_duration_seconds`` (histogram, seconds per call) and
    ``pigeon_request_duration_seconds`` (RPC client latency, labels ``subject``, ``outcome``:
    ``ok`` or the exception's type name). Add it first (outermost) to count what other
    middleware does too.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
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
        self._by_handler: dict[tuple[str, str], _Series] = {}
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
            self.request_duration.labels(message.route, outcome).observe(elapsed)

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
            )
        return series

    def _counter(self, name: str, description: str) -> Counter:
        return Counter(f"pigeon_messages_{name}", description, LABELS, registry=self.registry)


@dataclass(frozen=True, slots=True)
class _Series:
    received: Counter
    processed: Counter
    failed: Counter
    retried: Counter
    redelivered: Counter
    dead_lettered: Counter
    duration: Histogram
