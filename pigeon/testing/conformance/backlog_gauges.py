"""The backlog gauges (``pigeon run``'s sampler, a scrape of ``app.asgi()``'s ``/metrics``) serve
only the broker's current numbers: when the broker stops answering (its connection stays up,
nothing comes back), a queue's reading fails within the sampler's patience, the queue loses its
samples (no stale numbers) and the failure is one log line, once, not a traceback per reading;
when the broker answers again the samples come back.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from pigeon import App, Reject
from pigeon.testing.conformance.fixtures import Backend
from pigeon.testing.conformance.hostile import scheme_of
from pigeon.testing.conformance.models import Job
from pigeon.testing.proxy import proxied
from pigeon.testing.waiting import wait_for

PATIENCE = 0.5
"""Seconds a sampling of the gauges may take here (``READ_PATIENCE`` is 5 s)."""


def _samples(metrics: Any, queue: str) -> dict[str, float | None]:
    """The backlog gauges' values for ``queue`` (``None``: no sample)."""
    from pigeon.metrics import BACKLOG_GAUGES

    get = metrics.registry.get_sample_value
    return {name: get(name, {"queue": queue}) for name, _ in BACKLOG_GAUGES.values()}


async def test_a_silent_broker_drops_the_backlog_samples_and_logs_once(
    backend: Backend, uid: str, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("prometheus_client")
    from pigeon.metrics import PrometheusMetrics
    from pigeon.sampling import BacklogGauges

    if scheme_of(backend) == "memory":
        pytest.skip("memory:// has no server to fall silent")
    queue = f"{uid}.jobs"
    async with proxied(backend.url()) as (url, proxy):
        options: dict[str, Any] = dict(backend.options)
        app, metrics = App(url, **options), PrometheusMetrics()

        @app.worker(queue)
        async def refuse(job: Job) -> None:
            raise Reject("no")

        gauges = BacklogGauges(app, metrics)

        async def dead_letter_counted() -> bool:
            await gauges.sample([queue], PATIENCE)
            return _samples(metrics, queue)["pigeon_dead_letters"] == 1

        try:
            async with app:
                await app.enqueue(queue, Job(1))
                await wait_for(dead_letter_counted, what="the dead letter in the gauge")
                proxy.pause()
                with caplog.at_level(logging.WARNING, logger="pigeon"):
                    for _ in range(3):
                        await gauges.sample([queue], PATIENCE)
                        assert set(_samples(metrics, queue).values()) == {None}, "stale samples"
                proxy.resume()
                await wait_for(dead_letter_counted, what="the samples back once it answers")
        finally:
            proxy.resume()
            app.shutdown_timeout = 0
            await app.close()
    lines = [r for r in caplog.records if "backlog" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert lines[0].exc_info is None, "a silent broker is no fault of pigeon's: no traceback"
    assert f"cannot read the backlog of {queue!r}" in lines[0].getMessage()
    assert f"did not answer within {PATIENCE:g}s" in lines[0].getMessage()
