"""A server that no longer has a live App's streams or consumers (restarted without its store, or
an operator's ``nats consumer rm``): each pull consumer finds its consumer gone, declares it
again and serves again, within seconds. Before, it pulled from nothing for good (the server
answered 503, or nothing before 2.10) while the App looked ready: durable events and jobs sent
from then on waited, or were not kept at all (an interest stream keeps nothing with no consumer).
"""

from __future__ import annotations

from collections.abc import Iterator

import nats
import pytest

from pigeon import App, BrokerError
from pigeon.asgi import readiness
from pigeon.testing.conformance.models import Job, Order
from pigeon.testing.waiting import wait_for
from pigeon.transports.nats.recovery import CHECK_EVERY
from pigeon.transports.nats.topology import MOVERS, WORKERS, QueueNames, consumer_name
from tests.brokers.nats import NatsServer

BACK_WITHIN = 3 * CHECK_EVERY + 10
"""Seconds a lost consumer may take to serve again: its next check, and the reconnect."""


def _serving(app: App, uid: str) -> tuple[list[int], list[int]]:
    """A durable subscriber and a worker on ``app``: what each got."""
    events: list[int] = []
    jobs: list[int] = []

    @app.subscribe(f"{uid}.events", durable=f"{uid}-audit")
    async def audit(order: Order) -> None:
        events.append(order.id)

    @app.worker(f"{uid}.jobs")
    async def work(job: Job) -> None:
        jobs.append(job.n)

    return events, jobs


async def _serve_again(app: App, uid: str, events: list[int], jobs: list[int], n: int) -> None:
    """Send until both handlers get what was sent: a durable event, a job now, a delayed job."""

    async def delivered() -> bool:
        try:
            await app.publish(f"{uid}.events", Order(id=n))
            await app.enqueue(f"{uid}.jobs", Job(n))
        except BrokerError:  # reconnecting
            return False
        return n in events and n in jobs

    await wait_for(delivered, BACK_WITHIN, "the durable subscriber and the worker to serve again")
    await app.enqueue(f"{uid}.jobs", Job(-n), delay=0.2)
    await wait_for(lambda: -n in jobs, BACK_WITHIN, "a delayed job to be moved and handled")


async def test_deleted_consumers_are_declared_again(
    nats_url: str, raw: nats.NATS, uid: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = App(nats_url)
    events, jobs = _serving(app, uid)
    names = QueueNames.of(f"{uid}.jobs")
    async with app:
        await _serve_again(app, uid, events, jobs, 1)
        manager = raw.jetstream()
        lost = (
            (names.stream, WORKERS),
            (names.delay_stream, MOVERS),
            (await _stream_of(manager, f"{uid}.events"), consumer_name(f"{uid}-audit")),
        )
        for stream, consumer in lost:
            await manager.delete_consumer(stream, consumer)
        await _serve_again(app, uid, events, jobs, 2)
        assert readiness(app)["ready"]
        for stream, consumer in lost:
            await manager.consumer_info(stream, consumer)  # raises if it is still gone
    # A worker's and a mover's redeclare both declare the whole queue: whichever checks first
    # brings both back, and the other then finds its consumer there.
    warned = {r.args[0] for r in caplog.records if "was gone" in r.getMessage()}
    assert consumer_name(f"{uid}-audit") in warned, warned
    assert warned & {WORKERS, MOVERS}, warned


async def _stream_of(manager: object, subject: str) -> str:
    stream: str = await manager.find_stream_name_by_subject(subject)  # type: ignore[attr-defined]
    return stream


@pytest.fixture
def server() -> Iterator[NatsServer]:
    server = NatsServer(name="lost")
    server.start()
    yield server
    server.remove()


async def test_a_server_restarted_without_its_store_gets_everything_declared_again(
    server: NatsServer, uid: str
) -> None:
    app = App(server.url, reconnect_time_wait=0.2)
    events, jobs = _serving(app, uid)
    async with app:
        await _serve_again(app, uid, events, jobs, 1)
        server.stop()
        server.remove()  # the store too: the server comes back empty
        server.start()
        await _serve_again(app, uid, events, jobs, 2)
        assert readiness(app)["ready"]


async def test_a_consumer_that_cannot_be_declared_again_is_asked_after_every_few_seconds(
    nats_url: str, raw: nats.NATS, uid: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A passive App declares nothing: its lost consumer stays lost, which it says, once per
    ``CHECK_EVERY`` (each pull's 503 asked again at once: two warnings a second, per consumer)."""
    manager = raw.jetstream()
    stream, consumer = f"{uid}_OWN", consumer_name(f"{uid}-audit")
    await manager.add_stream(name=stream, subjects=[f"{uid}.events"])
    await manager.add_consumer(stream, durable_name=consumer, ack_policy="explicit")
    app = App(nats_url, passive=True)
    _serving_durable_only(app, uid)
    async with app:
        await manager.delete_consumer(stream, consumer)
        failed = lambda: [r for r in caplog.records if "checking consumer" in r.getMessage()]  # noqa: E731
        await wait_for(lambda: len(failed()) >= 2, 3 * CHECK_EVERY, "two failed checks")
        first, second = failed()[:2]
        assert second.created - first.created >= CHECK_EVERY - 0.5


def _serving_durable_only(app: App, uid: str) -> None:
    @app.subscribe(f"{uid}.events", durable=f"{uid}-audit")
    async def audit(order: Order) -> None:
        pass
