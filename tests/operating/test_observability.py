"""Metrics scraped over HTTP count a known run; trace context crosses Apps; health tells ready."""

from __future__ import annotations

import asyncio
import logging
import socket
import urllib.error
import urllib.request

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from pigeon import App, ConfigurationError, NoResponders, Redeliver, RemoteError, Retry
from pigeon.health import serve_health
from pigeon.metrics import PrometheusMetrics
from pigeon.running import observe
from pigeon.testing.waiting import wait_dead_letters, wait_for
from pigeon.tracing import OpenTelemetryTracing


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scrape(port: int) -> dict[tuple[str, str, str], float]:
    """``(metric sample name, pattern, subject) -> value`` from the metrics endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            key = (sample.name, labels.get("pattern", ""), labels.get("subject", ""))
            samples[key] = samples.get(key, 0) + sample.value
    return samples


async def test_metrics_count_a_known_run(uid: str) -> None:
    app = App(f"memory://{uid}")
    metrics = PrometheusMetrics()
    port = free_port()
    metrics.serve(port, "127.0.0.1")
    app.use(metrics)
    seen: list[int] = []

    @app.subscribe("events")
    async def on_event(n: int) -> None:
        seen.append(n)

    @app.worker("jobs", retry=Retry(attempts=3, backoff=0.001), redeliver=Redeliver(delays=(0.01,)))
    async def work(n: int) -> None:
        if n == 13:
            raise RuntimeError("unlucky")

    @app.rpc("double")
    async def double(n: int) -> int:
        return n * 2

    async with app:
        for n in range(5):
            await app.publish("events", n)
        await app.enqueue("jobs", 1)
        await app.enqueue("jobs", 13)
        assert await app.request("double", 4) == 8
        with pytest.raises(NoResponders):
            await app.request("nobody", 1)
        await wait_for(lambda: len(seen) == 5)
        await wait_dead_letters(app, "jobs", 1)
        labels = {"pattern": "worker", "subject": "jobs"}
        dead = "pigeon_messages_dead_lettered_total"
        await wait_for(lambda: metrics.registry.get_sample_value(dead, labels) == 1)
        samples = await asyncio.to_thread(scrape, port)

    assert samples[("pigeon_messages_received_total", "subscribe", "events")] == 5
    assert samples[("pigeon_messages_processed_total", "subscribe", "events")] == 5
    # metrics are a middleware: they count handler calls, job 13's three per delivery included
    assert samples[("pigeon_messages_received_total", "worker", "jobs")] == 7
    assert samples[("pigeon_messages_processed_total", "worker", "jobs")] == 1
    assert samples[("pigeon_messages_retried_total", "worker", "jobs")] == 5
    assert samples[("pigeon_messages_failed_total", "worker", "jobs")] == 6
    # and, told how each delivery was settled, what the work pool did with job 13
    assert samples[("pigeon_messages_redelivered_total", "worker", "jobs")] == 1
    assert samples[("pigeon_messages_dead_lettered_total", "worker", "jobs")] == 1
    assert samples[("pigeon_messages_processed_total", "rpc", "double")] == 1
    assert samples[("pigeon_handler_duration_seconds_count", "worker", "jobs")] == 7
    assert samples[("pigeon_request_duration_seconds_count", "", "double")] == 1
    assert samples[("pigeon_request_duration_seconds_count", "", "nobody")] == 1


async def test_trace_context_crosses_apps(uid: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    sender, receiver = App(f"memory://{uid}"), App(f"memory://{uid}")
    for app in (sender, receiver):
        app.use(OpenTelemetryTracing(provider))
    trace_ids: dict[str, int] = {}

    def current_trace() -> int:
        return trace.get_current_span().get_span_context().trace_id

    @receiver.subscribe("traced.event")
    async def on_event(n: int) -> None:
        trace_ids["subscribe"] = current_trace()

    @receiver.worker("traced.job")
    async def on_job(n: int) -> None:
        trace_ids["worker"] = current_trace()

    @receiver.rpc("traced.rpc")
    async def on_request(n: int) -> int:
        trace_ids["rpc"] = current_trace()
        return n

    async with sender, receiver:
        with tracer.start_as_current_span("checkout") as root:
            await sender.publish("traced.event", 1)
            await sender.enqueue("traced.job", 2)
            await sender.request("traced.rpc", 3)
        await wait_for(lambda: len(trace_ids) == 3)
    expected = root.get_span_context().trace_id
    assert trace_ids == {"subscribe": expected, "worker": expected, "rpc": expected}
    handled = [s for s in exporter.get_finished_spans() if s.name.endswith(" process")]
    assert {s.name for s in handled} == {
        "traced.event process",
        "traced.job process",
        "traced.rpc process",
    }
    assert all(s.parent is not None for s in handled)
    sent = {s.name: s for s in exporter.get_finished_spans() if s.name.split()[-1] != "process"}
    sent.pop("checkout")
    assert {name: s.kind for name, s in sent.items()} == {
        "traced.event publish": trace.SpanKind.PRODUCER,
        "traced.job enqueue": trace.SpanKind.PRODUCER,
        "traced.rpc request": trace.SpanKind.CLIENT,
    }
    assert all(s.parent.span_id == root.get_span_context().span_id for s in sent.values())
    parents = {s.name.split()[0]: s.parent.span_id for s in handled}  # each its sender's child
    assert parents == {s.name.split()[0]: s.get_span_context().span_id for s in sent.values()}


async def test_a_send_outside_any_span_starts_the_trace_its_handler_joins(uid: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = App(f"memory://{uid}")
    app.use(OpenTelemetryTracing(provider))
    seen: list[int] = []

    @app.subscribe("traced.alone")
    async def on_event(n: int) -> None:
        seen.append(trace.get_current_span().get_span_context().trace_id)

    @app.rpc("traced.refuses")
    async def refuses(n: int) -> int:
        raise ValueError("no")

    async with app:
        await app.publish("traced.alone", 1)
        await wait_for(lambda: len(seen) == 1)
        with pytest.raises(NoResponders):
            await app.request("traced.nobody", 1, timeout=5)
        with pytest.raises(RemoteError):
            await app.request("traced.refuses", 1, timeout=5)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    producer = spans["traced.alone publish"]
    assert producer.parent is None  # the root of a new trace
    assert seen == [producer.get_span_context().trace_id]
    assert spans["traced.alone process"].parent.span_id == producer.get_span_context().span_id
    failed = spans["traced.nobody request"]
    assert failed.status.status_code == trace.StatusCode.ERROR
    refused = spans["traced.refuses request"]  # answered, with an error: failed too
    assert refused.status.status_code == trace.StatusCode.ERROR
    assert refused.attributes["error.type"] == "ValueError"
    assert spans["traced.alone publish"].status.status_code == trace.StatusCode.UNSET
    assert [e.attributes["exception.type"] for e in failed.events] == ["pigeon.errors.NoResponders"]


async def test_health_answers_ready_only_while_serving(uid: str) -> None:
    app = App(f"memory://{uid}")

    @app.subscribe("ping")
    async def ping(n: int) -> None: ...

    port = free_port()
    server = await serve_health(lambda: app.ready and app.transport.connected, port, "127.0.0.1")

    def status() -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return error.code

    try:
        assert await asyncio.to_thread(status) == 503
        async with app:
            assert await asyncio.to_thread(status) == 200
        assert await asyncio.to_thread(status) == 503
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("set_up", [False, True])
def test_tracing_without_a_tracer_provider_says_no_span_is_recorded(
    set_up: bool, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = TracerProvider() if set_up else trace.ProxyTracerProvider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    with caplog.at_level(logging.WARNING, logger="pigeon"):
        observe(App("memory://tracing-cli"), tracing=True, metrics_port=None, bind="127.0.0.1")
    warned = [r.getMessage() for r in caplog.records if "tracer provider" in r.getMessage()]
    assert len(warned) == (0 if set_up else 1)


def test_request_subjects_given_as_one_string_are_refused() -> None:
    """A string is an iterable of one-character patterns: it used to label nothing, silently."""
    from pigeon.metrics import PrometheusMetrics

    with pytest.raises(ConfigurationError, match=r"request_subjects=\['orders\.\*\.get'\]"):
        PrometheusMetrics(request_subjects="orders.*.get")
