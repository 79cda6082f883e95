"""OpenTelemetry tracing (extra ``pigeon[otel]``), as a middleware: W3C trace context in message
headers, and a span per handler call, so one trace follows a request across services."""

from __future__ import annotations

from typing import Any

from pigeon import headers as h
from pigeon.errors import ConfigurationError
from pigeon.message import Message
from pigeon.middleware import CallNext

try:
    from opentelemetry import propagate, trace
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
    raise ConfigurationError("tracing needs the otel extra: pip install 'pigeon[otel]'") from exc

SPAN_KINDS = {
    "subscribe": trace.SpanKind.CONSUMER,
    "worker": trace.SpanKind.CONSUMER,
    "rpc": trace.SpanKind.SERVER,
}


SEND_KINDS = {
    "publish": trace.SpanKind.PRODUCER,
    "enqueue": trace.SpanKind.PRODUCER,
    "request": trace.SpanKind.CLIENT,
}


class OpenTelemetryTracing:
    """A middleware that propagates trace context and opens a span around each send and each
    handler call, following OpenTelemetry's messaging semantic conventions.

    Each send (publish, enqueue, request) gets a span named ``<subject> <publish|enqueue|
    request>`` (kind ``PRODUCER``; ``CLIENT`` for a request, which lasts until the reply or the
    error), child of the current span or the root of a new trace; its context goes in the
    message's ``traceparent``/``tracestate`` headers (the globally configured propagator, W3C by
    default). Each handler call gets a span, child of the sender's, named ``<subject>
    process``, which is current while the handler runs, so what the handler sends continues the
    trace. A send or call that raises records the exception and ends its span with an error; so
    does a request answered with an error (``RemoteError``), its type in ``error.type``.
    """

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self.tracer = trace.get_tracer("pigeon", tracer_provider=tracer_provider)

    async def send(self, message: Message, call_next: CallNext) -> Any:
        """Send ``message`` inside its span, whose context its headers carry."""
        with self.tracer.start_as_current_span(
            f"{message.subject} {message.pattern}",
            kind=SEND_KINDS.get(message.pattern, trace.SpanKind.PRODUCER),
            attributes={
                **_attributes(message, "send"),
                "messaging.operation.name": message.pattern,
            },
        ) as span:
            propagate.inject(message.headers)
            sent = await call_next(message)
            if isinstance(sent, Message) and (error := h.error_type(sent.headers)) is not None:
                span.set_status(trace.StatusCode.ERROR, f"the server answered {error}")
                span.set_attribute("error.type", error)
            return sent

    async def handle(self, message: Message, call_next: CallNext) -> Any:
        """Run the call in a span, child of the sender's context; an exception is recorded."""
        with self.tracer.start_as_current_span(
            f"{message.route} process",
            context=propagate.extract(message.headers),
            kind=SPAN_KINDS.get(message.pattern, trace.SpanKind.CONSUMER),
            attributes=_attributes(message, "process"),
        ):
            return await call_next(message)


def _attributes(message: Message, operation: str) -> dict[str, str]:
    """A span's attributes for ``message`` (OpenTelemetry's messaging semantic conventions;
    ``operation``: ``send`` or ``process``)."""
    return {
        "messaging.operation.type": operation,
        "messaging.destination.name": message.subject,
        "messaging.message.id": message.message_id,
        "pigeon.pattern": message.pattern,
    }
