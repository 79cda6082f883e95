"""The delay ladder: any number of distinct delays on a fixed set of broker objects, and delayed
jobs that wait on the broker through a dropped connection."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable

import pytest

from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_for
from pigeon.transports.rabbitmq.topology import DELAY_LEVELS
from tests.backends import Backend, unavailable
from tests.brokers import rabbitmq
from tests.conftest import MakeApp

LADDER_OBJECTS = 2 * DELAY_LEVELS + 1
"""Per queue type: an exchange and a queue per level, and the delivery exchange."""


@pytest.fixture(params=["rabbitmq", "rabbitmq-classic"])
def backend(request: pytest.FixtureRequest) -> Backend:
    return rabbitmq.BACKENDS[request.param]()


def _objects(vhost: str) -> set[str]:
    """The names of every queue and exchange of ``vhost`` (``rabbitmqctl``)."""
    try:
        queues = rabbitmq.rabbitmqctl("list_queues", "-p", vhost, "--silent", "name").stdout
        exchanges = rabbitmq.rabbitmqctl("list_exchanges", "-p", vhost, "--silent", "name").stdout
    except OSError as exc:
        unavailable(f"rabbitmqctl is not available: {exc}")
    return {f"queue {q}" for q in queues.split()} | {f"exchange {e}" for e in exchanges.split()}


@pytest.mark.timeout(240)  # 1,000 confirmed publishes and their hops down the ladder
async def test_jobs_with_a_thousand_distinct_delays_use_a_fixed_set_of_objects(
    make_app: MakeApp, uid: str, amqp_url: str
) -> None:
    _, vhost = rabbitmq.session_url()
    app = make_app()
    handled: set[int] = set()
    count = distinct = 1_000  # a delay each

    @app.worker(f"{uid}.many", concurrency=64)
    async def work(job: Job) -> None:
        handled.add(job.n)

    async with app:
        await app.enqueue(f"{uid}.many", Job(-1))  # declares the queue before counting
        await wait_for(lambda: -1 in handled, what="the first job")
        before = await asyncio.to_thread(_objects, vhost)
        for start in range(0, count, 500):
            await asyncio.gather(
                *(
                    app.enqueue(f"{uid}.many", Job(n), delay=0.001 * (1 + n % distinct))
                    for n in range(start, start + 500)
                )
            )
        await wait_for(lambda: len(handled) == count + 1, timeout=60, what=f"{count} jobs")
        after = await asyncio.to_thread(_objects, vhost)
        assert await app.dead_letters(f"{uid}.many") == []
    new = after - before
    assert len(new) <= LADDER_OBJECTS, sorted(new)
    per_delay = [name for name in after if re.search(r"\.retry\.\d+$", name)]
    assert not per_delay, "no per-delay retry queues"


async def test_delayed_jobs_survive_a_dropped_connection(
    make_app: MakeApp, uid: str, drop_connections: Callable[[], Awaitable[None]]
) -> None:
    app = make_app()
    handled: dict[int, float] = {}

    @app.worker(f"{uid}.dropped", concurrency=8)
    async def work(job: Job) -> None:
        handled.setdefault(job.n, time.monotonic())

    async with app:
        started = time.monotonic()
        for n in range(40):
            await app.enqueue(f"{uid}.dropped", Job(n), delay=1.0 + n / 40)
        await drop_connections()  # the jobs wait in the ladder, not in this process
        await wait_for(lambda: len(handled) == 40, timeout=30, what="every delayed job")
    for n, at in handled.items():
        assert at - started >= 1.0 + n / 40 - 0.05, f"job {n} came early"
