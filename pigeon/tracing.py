"""OpenTelemetry tracing (extra ``pigeon[otel]``): W3C trace context in message headers, and a
span per handled message, so one trace follows a request across services."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager

from pigeon.errors import ConfigurationError
from pigeon.observe import Outcome

try:
    from opentelemetry import propagate, trace
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
    raise ConfigurationError("tracing needs the otel extra: pip install 'pigeon[otel]'") from exc

SPAN_KINDS = {
    "subscribe": trace.SpanKind.CONSUMER,
    "worker": trace.SpanKind.CONSUMER,
    "rpc": trace.SpanKind.SERVER,
}


class OpenTelemetryTracing:
    """An observer that propagates trace context and opens a span around each handled message.

    Outgoing messages (publish, request, reply, enqueue) carry the current context in
    ``traceparent``/``tracestate`` headers (the globally configured propagator, W3C by default).
    Each handled message gets a span, child of the sender's, named ``<subject> process``, which
    is current while the handler runs, so what the handler sends continues the trace.
    """

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self.tracer = trace.get_tracer("pigeon", tracer_provider=tracer_provider)

    def sending(self, pattern: str, subject: str, headers: dict[str, str]) -> None:
        """Inject the current trace context into the message's headers."""
        propagate.inject(headers)

    def handling(
        self, pattern: str, subject: str, headers: Mapping[str, str]
    ) -> AbstractContextManager[object]:
        """A span, child of the sender's context, current while the message is handled."""
        return self.tracer.start_as_current_span(
            f"{subject} process",
            context=propagate.extract(headers),
            kind=SPAN_KINDS.get(pattern, trace.SpanKind.CONSUMER),
            attributes={
                "messaging.operation.type": "process",
                "messaging.destination.name": subject,
                "pigeon.pattern": pattern,
            },
        )

    def outcome(self, pattern: str, subject: str, outcome: Outcome) -> None:
        """Record the outcome on the current span, if it is still open."""
        trace.get_current_span().set_attribute("pigeon.outcome", outcome.value)

    def requested(self, subject: str, seconds: float, error: str | None) -> None:
        """Nothing: the caller's own spans cover the request."""
