"""A slow core-NATS subscriber is visible: drops counted, one warning line per interval with the
count (not one per message), and what is still buffered at shutdown is logged, not lost silently.
"""

from __future__ import annotations

import asyncio
import logging

import nats
import pytest

from pigeon import App
from pigeon.testing.conformance.models import Order
from pigeon.testing.waiting import wait_for
from pigeon.transports.nats.core import registered

EVENTS = 2000


async def test_a_slow_subscriber_drops_with_one_warning_and_a_count(
    nats_url: str, uid: str, raw: nats.NATS, caplog: pytest.LogCaptureFixture
) -> None:
    app = App(nats_url, pending_msgs_limit=20)
    release = asyncio.Event()
    handled = 0

    @app.subscribe(f"{uid}.events")
    async def slow(order: Order) -> None:
        nonlocal handled
        await release.wait()
        handled += 1

    caplog.set_level(logging.WARNING, logger="pigeon")
    async with app:
        for n in range(EVENTS):
            await raw.publish(f"{uid}.events", Order(id=n).model_dump_json().encode())
        await registered(raw)  # nats-py 2.16: flush may overtake what it buffered
        slow_consumers = app.transport.slow_consumers  # type: ignore[attr-defined]
        await wait_for(lambda: slow_consumers.dropped[f"{uid}.events"] > EVENTS // 2)
        release.set()
        await wait_for(lambda: handled > 0)
    warnings = [r.getMessage() for r in caplog.records if "slow consumer" in r.getMessage()]
    assert 1 <= len(warnings) <= 3, warnings  # not one line per dropped message
    assert str(slow_consumers.dropped[f"{uid}.events"]) in warnings[-1]
    at_close = [r.getMessage() for r in caplog.records if "buffered messages" in r.getMessage()]
    assert len(at_close) <= 1


async def test_drops_are_counted_in_the_metrics(nats_url: str, uid: str, raw: nats.NATS) -> None:
    from prometheus_client import generate_latest

    from pigeon.metrics import PrometheusMetrics

    app, metrics = App(nats_url, pending_msgs_limit=20), PrometheusMetrics()
    app.use(metrics)
    metrics.count_drops(app)  # what `pigeon run` does
    release = asyncio.Event()

    @app.subscribe(f"{uid}.events")
    async def slow(order: Order) -> None:
        await release.wait()

    def dropped() -> float:
        sample = metrics.registry.get_sample_value(
            "pigeon_events_dropped_total", {"subject": f"{uid}.events"}
        )
        return sample or 0.0

    async with app:
        for n in range(EVENTS // 4):
            await raw.publish(f"{uid}.events", Order(id=n).model_dump_json().encode())
        await registered(raw)
        await wait_for(lambda: dropped() > 0, what="drops in pigeon_events_dropped_total")
        release.set()
    assert b"pigeon_events_dropped_total" in generate_latest(metrics.registry)


async def test_pending_bytes_limit_bounds_the_events_waiting(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    """Events of 1000 bytes under a 10,000-byte limit: as many waiting as stay below the limit
    (nats-py's rule, which pigeon's own buffer keeps) and the one being handled are kept, in
    order; every other one is dropped and counted."""
    app = App(nats_url, pending_bytes_limit=10_000)
    release = asyncio.Event()
    handled: list[int] = []
    subject, events = f"{uid}.events", 50

    @app.subscribe(subject)
    async def slow(order: Order) -> None:
        await release.wait()
        handled.append(order.id)

    def payload(n: int) -> bytes:
        body = Order(id=n).model_dump_json().encode()
        return body + b" " * (1000 - len(body))  # JSON with trailing whitespace: 1000 bytes

    async with app:
        for n in range(events):
            await raw.publish(subject, payload(n))
        await registered(raw)
        dropped = app.transport.slow_consumers.dropped  # type: ignore[attr-defined]
        # 9 waiting fit (9,000 + 1,000 reaches the limit), 10 if the handler took one first
        await wait_for(lambda: dropped[subject] >= events - 10, what="the drops counted")
        release.set()
        kept = events - dropped[subject]
        await wait_for(lambda: len(handled) == kept, what="the events kept handled")
    # in order; which ones depends on when the handler took the first (room for one more)
    assert handled == sorted(handled)
    assert handled[:9] == list(range(9))
    assert kept in (9, 10)
    assert dropped[subject] == events - kept
