"""Prometheus metrics (extra ``pigeon[prometheus]``): counters per outcome, handler durations,
RPC client latency, labelled by pattern and subject or queue."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping

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

    @contextlib.contextmanager
    def handling(self, pattern: str, subject: str, headers: Mapping[str, str]) -> Iterator[None]:
        """Count the delivery and time its handling."""
        self.received.labels(pattern, subject).inc()
        started = time.perf_counter()
        try:
            yield
        finally:
            self.duration.labels(pattern, subject).observe(time.perf_counter() - started)

    def outcome(self, pattern: str, subject: str, outcome: Outcome) -> None:
        """Count the outcome."""
        self._outcomes[outcome].labels(pattern, subject).inc()

    def requested(self, subject: str, seconds: float, error: str | None) -> None:
        """Record one request's latency."""
        self.request_duration.labels(subject, error or "ok").observe(seconds)

    def _counter(self, name: str, description: str) -> Counter:
        return Counter(f"pigeon_messages_{name}", description, LABELS, registry=self.registry)
