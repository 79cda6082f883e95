"""``App.backlog``: what waits on a work queue, as every transport reports it.

A number a transport cannot tell is ``None``, never 0: ``UNKNOWN`` names them per transport (a
transport not named there must report every number).
"""

from __future__ import annotations

import asyncio
import re

import pytest

from pigeon import App, Backlog, ConfigurationError, Reject
from pigeon.testing.conformance.fixtures import Backend, MakeApp, requires
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_for

UNKNOWN: dict[str, frozenset[str]] = {
    "rabbitmq": frozenset({"unacked", "oldest_age"}),
    "nats": frozenset({"consumers"}),
}
"""Transport -> the ``Backlog`` fields its broker cannot report (see ``docs/backlog.md``)."""

RETURNS_STAY_UNACKED = frozenset({"nats"})
"""Transports whose broker counts a job handed back unsettled as unacked until a worker takes it
again (JetStream keeps a nak'd message in the consumer's ack-pending set), not as ready."""


def unknown(backend: Backend) -> frozenset[str]:
    """The fields ``backend`` reports as ``None``."""
    return UNKNOWN.get(backend.name.split("-")[0], frozenset())


def check_unknown(backend: Backend, backlog: Backlog) -> None:
    """Fields the transport cannot tell are ``None``; every other one is a number."""
    for field in Backlog.__dataclass_fields__:
        value = getattr(backlog, field)
        if field in unknown(backend):
            assert value is None, f"{backend.name} cannot tell {field}, yet reported {value}"
        else:
            assert value is not None, f"{backend.name} did not report {field}"


async def counted(app: App, queue: str, ready: int, durable: str | None = None) -> Backlog:
    """``app.backlog(queue)`` once at least ``ready`` messages are counted ready: NATS counts a
    stored message in its consumer's ``num_pending`` a moment after acknowledging the publish
    (seen: 0 right after ``enqueue`` in about 1 run in 30), and a durable event, published without
    acknowledgement, later still. Asserts nothing itself: the caller checks the figures."""

    async def enough() -> bool:
        found = (await app.backlog(queue, durable=durable)).ready
        return found is not None and found >= ready

    await wait_for(enough, what=f"{ready} counted ready")
    return await app.backlog(queue, durable=durable)


async def test_jobs_with_no_worker_are_ready(backend: Backend, make_app: MakeApp, uid: str) -> None:
    app = make_app()
    queue = f"{uid}.idle"
    async with app:
        for n in range(5):
            await app.enqueue(queue, Job(n))
        backlog = await counted(app, queue, 5)
    check_unknown(backend, backlog)
    assert backlog.ready == 5
    assert backlog.unacked in (0, None)
    assert backlog.dead_letters == 0
    assert backlog.consumers in (0, None)


async def test_a_slow_worker_holds_at_most_its_concurrency(
    backend: Backend, make_app: MakeApp, uid: str
) -> None:
    producer, worker = make_app(), make_app()
    queue = f"{uid}.slow"
    release = asyncio.Event()
    started: list[int] = []

    @worker.worker(queue, concurrency=2)
    async def work(job: Job) -> None:
        started.append(job.n)
        await release.wait()

    async with producer:
        for n in range(6):
            await producer.enqueue(queue, Job(n))
        assert (await counted(producer, queue, 6)).ready == 6
        async with worker:
            await wait_for(lambda: len(started) == 2, what="two jobs started")

            async def settled_at_two_in_hand() -> bool:
                backlog = await producer.backlog(queue)
                return backlog.ready == 4 and backlog.unacked in (2, None)

            await wait_for(settled_at_two_in_hand, what="4 ready, 2 unacked")
            backlog = await producer.backlog(queue)
            check_unknown(backend, backlog)
            assert backlog.consumers in (1, None)
            release.set()
            await wait_for(lambda: len(started) == 6, what="every job started")


async def test_jobs_a_closing_worker_hands_back_are_ready_again(
    backend: Backend, make_app: MakeApp, uid: str
) -> None:
    producer, worker = make_app(), make_app(shutdown_timeout=0)
    queue = f"{uid}.returned"
    started: list[int] = []

    @worker.worker(queue, concurrency=2)
    async def work(job: Job) -> None:
        started.append(job.n)
        await asyncio.Event().wait()  # never finishes: the close hands the job back

    async with producer:
        for n in range(5):
            await producer.enqueue(queue, Job(n))
        async with worker:
            await wait_for(lambda: len(started) == 2, what="two jobs started")

        returns_unacked = backend.name.split("-")[0] in RETURNS_STAY_UNACKED

        async def all_back() -> bool:
            backlog = await producer.backlog(queue)
            if returns_unacked:
                return (backlog.ready, backlog.unacked) == (3, 2)
            return backlog.ready == 5 and backlog.unacked in (0, None)

        await wait_for(all_back, what="every job back on the queue")


async def test_the_oldest_age_grows_while_a_job_waits(
    backend: Backend, make_app: MakeApp, uid: str
) -> None:
    if "oldest_age" in unknown(backend):
        pytest.skip(f"{backend.name} cannot tell the oldest job's age")
    app = make_app()
    queue = f"{uid}.aging"
    async with app:
        await app.enqueue(queue, Job(1))
        first = (await app.backlog(queue)).oldest_age
        assert first is not None
        assert 0.0 <= first < 5.0

        async def older() -> bool:
            age = (await app.backlog(queue)).oldest_age
            return age is not None and age >= first + 0.05

        await wait_for(older, what="the oldest job's age to grow")


async def test_an_empty_queue_has_no_age(backend: Backend, make_app: MakeApp, uid: str) -> None:
    app = make_app()
    queue = f"{uid}.empty"
    done: list[int] = []

    @app.worker(queue)
    async def work(job: Job) -> None:
        done.append(job.n)

    async with app:
        await app.enqueue(queue, Job(1))
        await wait_for(lambda: done == [1])

        async def drained() -> bool:
            backlog = await app.backlog(queue)
            return backlog.ready == 0 and backlog.unacked in (0, None)

        await wait_for(drained, what="the queue to drain")
        backlog = await app.backlog(queue)
    check_unknown(backend, backlog)
    assert backlog.oldest_age in (0.0, None)
    assert backlog.consumers in (1, None)


async def test_dead_letters_are_counted(backend: Backend, make_app: MakeApp, uid: str) -> None:
    app = make_app()
    queue = f"{uid}.failing"

    @app.worker(queue)
    async def work(job: Job) -> None:
        raise ValueError("no")

    async with app:
        await app.enqueue(queue, Job(1))
        await app.enqueue(queue, Job(2))

        async def both_dead() -> bool:
            return (await app.backlog(queue)).dead_letters == 2

        await wait_for(both_dead, what="2 dead letters counted")


async def test_a_delayed_job_is_not_ready_before_it_is_due(
    backend: Backend, make_app: MakeApp, uid: str
) -> None:
    app = make_app()
    queue = f"{uid}.later"
    async with app:
        await app.enqueue(queue, Job(1), delay=60)
        await app.enqueue(queue, Job(2))
        backlog = await counted(app, queue, 1)
    assert backlog.ready == 1
    assert backlog.unacked in (0, None)


async def test_an_unknown_queue_is_an_error_not_zeros(make_app: MakeApp, uid: str) -> None:
    app = make_app()
    async with app:
        with pytest.raises(ConfigurationError, match=f"{uid}.nowhere.*does not exist"):
            await app.backlog(f"{uid}.nowhere")


SHORT_CLAIM_IDLE: dict[str, dict[str, object]] = {"redis": {"claim_idle": 1.0}}
"""App options that make a transport forget an idle consumer soon, if it forgets one at all."""

DELAYED_UNCOUNTED = frozenset({"nats"})
"""Transports on which a delayed job that fell due is not counted until a worker moves it onto
the work queue (NATS keeps it in the queue's delay stream; see ``docs/backlog.md``)."""


async def test_an_idle_worker_counts_until_it_stops(
    backend: Backend, make_app: MakeApp, uid: str
) -> None:
    options = SHORT_CLAIM_IDLE.get(backend.name.split("-")[0], {})
    producer, worker = make_app(), make_app(**options)
    queue = f"{uid}.idle-worker"

    @worker.worker(queue)
    async def work(job: Job) -> None: ...

    async def counted(count: int) -> bool:
        return (await producer.backlog(queue)).consumers in (count, None)

    async with producer, worker:
        await wait_for(lambda: counted(1), timeout=3, what="a worker with no job yet counted")
        await producer.enqueue(queue, Job(1))
        await wait_for(lambda: _drained(producer, queue), what="the job handled")
        await asyncio.sleep(1.5)  # idle for longer than any idle limit of the transport
        assert await counted(1), "a live idle worker is no longer counted"
        await worker.close()
        await wait_for(lambda: counted(0), timeout=3, what="the stopped worker not counted")


async def _drained(app: App, queue: str) -> bool:
    backlog = await app.backlog(queue)
    return backlog.ready == 0 and backlog.unacked in (0, None)


async def test_queues_that_share_a_name_on_the_broker_are_not_mixed_up(
    make_app: MakeApp, uid: str
) -> None:
    app = make_app()
    async with app:
        await app.enqueue(f"{uid}.a.b", Job(1))
        for other in (f"{uid}.a_b", f"{uid}_a_b"):
            with pytest.raises(ConfigurationError, match=re.escape(other)):
                await app.backlog(other)
        assert (await counted(app, f"{uid}.a.b", 1)).ready == 1


async def test_a_delayed_job_that_fell_due_is_ready_with_no_worker(
    backend: Backend, make_app: MakeApp, uid: str
) -> None:
    app = make_app()
    queue = f"{uid}.due"
    async with app:
        await app.enqueue(queue, Job(1), delay=0.2)
        assert (await app.backlog(queue)).ready == 0
        if backend.name.split("-")[0] in DELAYED_UNCOUNTED:
            await asyncio.sleep(0.5)  # due, and nobody moves it
            assert (await app.backlog(queue)).ready == 0
            return

        async def due() -> bool:
            return (await app.backlog(queue)).ready == 1

        await wait_for(due, what="the due job counted as ready")


async def test_a_dead_letter_queue_is_not_read_as_a_work_queue(make_app: MakeApp, uid: str) -> None:
    app = make_app()
    queue = f"{uid}.work"

    @app.worker(queue)
    async def work(job: Job) -> None:
        raise Reject("no")

    async with app:
        await app.enqueue(queue, Job(1), delay=0.01)  # through the delay ladder, if any
        await wait_for(lambda: _dead(app, queue, 1), what="the job dead-lettered")
        ladder = [f"pigeon.delay.{kind}.00" for kind in ("quorum", "classic")]
        for helper in (f"{queue}.dlq", f"{queue}.delivery-limit", *ladder):
            with pytest.raises(ConfigurationError, match=re.escape(helper)):
                await app.backlog(helper)


async def _dead(app: App, queue: str, count: int) -> bool:
    return (await app.backlog(queue)).dead_letters == count


async def test_a_replayed_job_ages_from_its_replay(
    backend: Backend, make_app: MakeApp, uid: str
) -> None:
    if "oldest_age" in unknown(backend):
        pytest.skip(f"{backend.name} cannot tell the oldest job's age")
    producer, worker = make_app(), make_app()
    queue = f"{uid}.replayed"

    @worker.worker(queue)
    async def work(job: Job) -> None:
        raise Reject("no")

    async with producer:
        async with worker:
            await producer.enqueue(queue, Job(1))
            await wait_for(lambda: _dead(producer, queue, 1), what="the job dead-lettered")
        await asyncio.sleep(0.6)  # time spent as a dead letter
        assert await producer.replay_dead_letters(queue) == 1
        backlog = await counted(producer, queue, 1)
    assert backlog.ready == 1
    assert backlog.oldest_age is not None
    assert backlog.oldest_age < 0.5


DURABLE_UNKNOWN: dict[str, frozenset[str]] = {
    "rabbitmq": frozenset({"unacked", "oldest_age"}),
    "nats": frozenset({"consumers"}),
}
"""Transport -> the ``Backlog`` fields of a durable subscription its broker cannot report
(``dead_letters`` is ``None`` everywhere: subscriptions have no dead-letter store)."""


def check_durable_unknown(backend: Backend, backlog: Backlog) -> None:
    """Fields the transport cannot tell of a durable subscription are ``None``; others numbers."""
    cannot = DURABLE_UNKNOWN.get(backend.name.split("-")[0], frozenset()) | {"dead_letters"}
    for field in Backlog.__dataclass_fields__:
        value = getattr(backlog, field)
        if field in cannot:
            assert value is None, f"{backend.name} cannot tell {field}, yet reported {value}"
        else:
            assert value is not None, f"{backend.name} did not report {field}"


async def test_a_stopped_durable_subscription_has_its_events_ready(
    backend: Backend, make_app: MakeApp, uid: str
) -> None:
    requires(backend, "durable")
    subscriber, publisher = make_app(), make_app()
    subject, name = f"{uid}.placed", f"{uid}-audit"
    seen: list[int] = []

    @subscriber.subscribe(subject, durable=name)
    async def audit(event: Job) -> None:
        seen.append(event.n)

    async with subscriber:
        pass  # ran once: the broker keeps its events from now on
    async with publisher:
        for n in range(4):
            await publisher.publish(subject, Job(n))
        backlog = await counted(publisher, subject, 4, durable=name)
        check_durable_unknown(backend, backlog)
        assert backlog.ready == 4
        assert backlog.unacked in (0, None)
        assert backlog.consumers in (0, None)
        async with subscriber:
            await wait_for(lambda: sorted(seen) == [0, 1, 2, 3], what="the kept events handled")

            async def drained() -> bool:
                after = await publisher.backlog(subject, durable=name)
                return after.ready == 0 and after.unacked in (0, None)

            await wait_for(drained, what="the durable backlog drained")


async def test_an_unknown_durable_subscription_is_an_error(
    backend: Backend, make_app: MakeApp, uid: str
) -> None:
    requires(backend, "durable")
    async with make_app() as app:
        await app.publish(f"{uid}.placed", Job(1))
        with pytest.raises(ConfigurationError, match="durable subscription"):
            await app.backlog(f"{uid}.placed", durable=f"{uid}-nobody")


async def test_a_durable_name_like_a_work_queues_is_not_read_as_a_subscription(
    backend: Backend, make_app: MakeApp, uid: str
) -> None:
    """A work queue of that name holds jobs, not the subscription's events (RabbitMQ read any
    queue named like the durable name)."""
    requires(backend, "durable")
    queue = f"{uid}.jobs"
    async with make_app() as app:
        await app.enqueue(queue, Job(1))
        with pytest.raises(ConfigurationError, match="durable subscription"):
            await app.backlog(f"{uid}.placed", durable=queue)
