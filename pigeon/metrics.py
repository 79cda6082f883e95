"""Prometheus metrics (extra ``pigeon[prometheus]``): counters per outcome, handler durations,
RPC client latency, labelled by pattern and subject or queue."""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass

from pigeon.errors import ConfigurationError
from pigeon.observe import Outcome

try:
    from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
    raise ConfigurationError(
        "metrics need the prometheus extra: pip install 'pigeon[prometheus]'"
    ) from exc

LABELS = ("pattern", "subject")


class PrometheusMetrics:
    """An observer that counts every delivery by outcome and times every handled message.

    Metrics: ``pigeon_messages_received_total``, ``..._processed_total``, ``..._failed_total``,
    ``..._retried_total``, ``..._redelivered_total``, ``..._dead_lettered_total`` (labels
    ``pattern``, ``subject``), ``pigeon_handler_duration_seconds`` (histogram, same labels) and
    ``pigeon_request_duration_seconds`` (RPC client latency, labels ``subject``, ``outcome``).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.received = self._counter("received", "Deliveries received")
        self._outcomes = {
            outcome: self._counter(outcome.value, f"Deliveries {outcome.value.replace('_', '-')}")
            for outcome in Outcome
        }
        self.duration = Histogram(
            "pigeon_handler_duration_seconds",
            "Time to handle one delivery",
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

    def sending(self, pattern: str, subject: str, headers: dict[str, str]) -> None:
        """Nothing to count on the way out."""

    def handling(
        self, pattern: str, subject: str, headers: Mapping[str, str]
    ) -> AbstractContextManager[object]:
        """Count the delivery and time its handling."""
        return _Timed(self._series(pattern, subject))

    def outcome(self, pattern: str, subject: str, outcome: Outcome) -> None:
        """Count the outcome."""
        self._series(pattern, subject).outcomes[outcome].inc()

    def requested(self, subject: str, seconds: float, error: str | None) -> None:
        """Record one request's latency."""
        self.request_duration.labels(subject, error or "ok").observe(seconds)

    def _series(self, pattern: str, subject: str) -> _Series:
        """The labelled children of one handler, looked up once (``labels()`` is slow)."""
        series = self._by_handler.get((pattern, subject))
        if series is None:
            series = self._by_handler[(pattern, subject)] = _Series(
                received=self.received.labels(pattern, subject),
                duration=self.duration.labels(pattern, subject),
                outcomes={o: c.labels(pattern, subject) for o, c in self._outcomes.items()},
            )
        return series

    def _counter(self, name: str, description: str) -> Counter:
        return Counter(f"pigeon_messages_{name}", description, LABELS, registry=self.registry)


@dataclass(frozen=True, slots=True)
class _Series:
    received: Counter
    duration: Histogram
    outcomes: dict[Outcome, Counter]


class _Timed:
    """Counts a delivery on entry and observes its duration on exit."""

    __slots__ = ("_series", "_started")

    def __init__(self, series: _Series) -> None:
        self._series = series

    def __enter__(self) -> object:
        self._series.received.inc()
        self._started = time.perf_counter()
        return None

    def __exit__(self, *exc: object) -> None:
        self._series.duration.observe(time.perf_counter() - self._started)
