"""``pigeon run --tracing`` and ``--metrics-port`` add their middleware only where the App's module
did not: one ``process`` span per handler call, one set of counters."""

from __future__ import annotations

import asyncio
import urllib.request

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pigeon import App
from pigeon.metrics import PrometheusMetrics
from pigeon.running import observe
from pigeon.tracing import OpenTelemetryTracing
from tests.brokers.nats import free_port


async def test_tracing_of_an_app_that_traces_already_gives_one_span_per_call(uid: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app, caller = App(f"memory://{uid}"), App(f"memory://{uid}")
    app.use(OpenTelemetryTracing(provider))  # the module's own
    observe(app, tracing=True, metrics_port=None, bind="127.0.0.1")  # pigeon run --tracing

    @app.rpc("traced.echo")
    async def echo(n: int) -> int:
        return n

    async with app, caller:
        assert await caller.request("traced.echo", 1) == 1
    spans = [s.name for s in exporter.get_finished_spans()]
    assert spans == ["traced.echo process"]
    assert sum(isinstance(m, OpenTelemetryTracing) for m in app.middleware) == 1


async def test_metrics_port_of_an_app_with_metrics_serves_its_counters_once(uid: str) -> None:
    app, caller = App(f"memory://{uid}"), App(f"memory://{uid}")
    own = PrometheusMetrics()
    app.use(own)
    port = free_port()
    observe(app, tracing=False, metrics_port=port, bind="127.0.0.1")  # --metrics-port

    @app.rpc("counted.echo")
    async def echo(n: int) -> int:
        return n

    async with app, caller:
        assert await caller.request("counted.echo", 1) == 1
    assert [m for m in app.middleware if isinstance(m, PrometheusMetrics)] == [own]
    text = await asyncio.to_thread(_scrape, port)
    assert 'pigeon_messages_received_total{pattern="rpc",subject="counted.echo"} 1.0' in text


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())
