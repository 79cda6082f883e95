"""The backlog gauges of an App's work queues and durable subscriptions, kept live: sampled
every few seconds under ``pigeon run`` (``sample_backlog``), or at a scrape of ``/metrics`` for
an App that FastAPI or uvicorn serves (``ScrapeSampler``).

A number is served only while it is the broker's current answer: a queue whose reading fails,
however it fails (the broker refuses, the connection drops, nothing answers within
``READ_PATIENCE``), loses its samples until it is read again, and the failure is logged once per
new error, one line; a fault of pigeon's own (an exception no transport should raise) is logged
with its traceback, once too. While the App is disconnected every queue loses its samples.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import TYPE_CHECKING

from pigeon.errors import PigeonError
from pigeon.failures import describe, one_line, shortened
from pigeon.status import Reading, backlog_of, watched

if TYPE_CHECKING:
    from pigeon.app import App
    from pigeon.metrics import PrometheusMetrics

log = logging.getLogger("pigeon")

READY_POLL = 0.1
"""Seconds between looks at whether the App is ready, before the first backlog reading."""

READ_PATIENCE = 5.0
"""Seconds one sampling of every queue may take (a scrape waits for it: Prometheus' scrape
timeout is 10 s); the queues not read by then count as failed."""


class BacklogGauges:
    """Sets ``metrics``' backlog gauges from readings of ``app``'s queues; remembers each
    queue's last error, so that a failure that goes on is logged once."""

    def __init__(self, app: App, metrics: PrometheusMetrics) -> None:
        self._app, self._metrics = app, metrics
        self._failing: dict[str, str] = {}

    async def sample(self, queues: list[str], patience: float = READ_PATIENCE) -> None:
        """Read every queue of ``queues``, within ``patience`` seconds in all, into the gauges."""
        if not self._app.transport.connected:  # the last numbers are not live: no samples
            for queue in queues:
                self._metrics.forget_backlog(queue)
            return
        deadline = asyncio.get_running_loop().time() + patience
        for queue in queues:
            self.record(await self._read(queue, deadline, patience))

    async def _read(self, queue: str, deadline: float, patience: float) -> Reading:
        """The reading of ``queue``, or the error it failed with (a fault of pigeon's is logged
        here with its traceback, once per new error)."""
        at = time.monotonic()
        try:
            async with asyncio.timeout_at(deadline):
                return Reading(queue, at, await backlog_of(self._app, queue))
        except TimeoutError:
            error = f"the broker did not answer within {patience:g}s"
        except PigeonError as exc:
            error = describe(exc)
        except Exception as exc:  # not a broker's failure: pigeon's own, so its traceback
            error = f"{type(exc).__name__}: {describe(exc)}"
            if self._failing.get(queue) != error:
                log.exception("pigeon: reading the backlog of %r failed", queue)
        return Reading(queue, at, None, one_line(shortened(error, 300)))

    def record(self, reading: Reading) -> None:
        """Put ``reading`` into the gauges: its numbers, or, when it failed, no samples and a
        warning unless this queue's last reading failed with the same error."""
        metrics, queue = self._metrics, reading.queue
        if reading.backlog is not None:
            metrics.record_backlog(queue, reading.backlog)
            self._failing.pop(queue, None)
            return
        metrics.forget_backlog(queue)
        error = reading.error or "unknown error"
        if self._failing.get(queue) != error:
            self._failing[queue] = error
            log.warning("pigeon: cannot read the backlog of %r: %s", queue, error)


async def sample_backlog(app: App, metrics: PrometheusMetrics, every: float) -> None:
    """Every ``every`` seconds while ``app`` is ready (the first time as soon as it is), set the
    backlog gauges of each of its work queues and durable subscriptions (``status.watched``),
    as the module docstring says. Runs until cancelled."""
    queues, gauges = watched(app), BacklogGauges(app, metrics)
    while True:
        if app.ready:
            await gauges.sample(queues)
        live = app.ready and app.transport.connected
        await asyncio.sleep(every if live else min(every, READY_POLL))


class ScrapeSampler:
    """The backlog gauges of ``app``'s work queues and durable subscriptions, read when
    ``/metrics`` is scraped (``App.asgi``), at most once per ``every`` seconds (0: never): what
    ``sample_backlog`` does for ``pigeon run``, for an App that FastAPI or uvicorn serves. A
    reading is bounded by ``READ_PATIENCE`` seconds, so that the scrape still answers."""

    def __init__(self, app: App, metrics: PrometheusMetrics, every: float) -> None:
        self._app, self._every = app, every
        self._gauges = BacklogGauges(app, metrics)
        self._next = -math.inf

    async def __call__(self) -> None:
        app, now = self._app, asyncio.get_running_loop().time()
        if self._every <= 0 or not app.ready or now < self._next or not (queues := watched(app)):
            return
        self._next = now + self._every
        await self._gauges.sample(queues)
