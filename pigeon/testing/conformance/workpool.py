"""Work pool semantics every transport must give."""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import time

import pytest

from pigeon import Message, Redeliver, Reject, Retry
from pigeon.testing.conformance.fixtures import RESOLUTION, Backend, MakeApp, now, requires
from pigeon.testing.conformance.models import Job, Order
from pigeon.testing.waiting import wait_dead_letters, wait_for

VIRTUAL_CLOCK = True
"""Safe on the virtual clock: nothing here compares the loop's clock with wall-clock time."""


async def test_each_job_is_handled_once_by_the_pool(make_app: MakeApp, uid: str) -> None:
    workers = [make_app(), make_app()]
    done: list[int] = []
    for app in workers:

        @app.worker(f"{uid}.jobs", concurrency=4)
        async def work(job: Job) -> None:
            await asyncio.sleep(0.001)  # the job's work, so both workers get a turn
            done.append(job.n)

    async with workers[0], workers[1]:
        for n in range(50):
            await workers[0].enqueue(f"{uid}.jobs", Job(n))
        await wait_for(lambda: len(done) >= 50)
        assert await workers[0].dead_letters(f"{uid}.jobs") == []
    assert sorted(done) == list(range(50))


async def test_concurrency_bounds_handlers_in_flight(make_app: MakeApp, uid: str) -> None:
    app = make_app()
    in_flight = peak = 0
    done = 0
    release = asyncio.Event()

    @app.worker(f"{uid}.bounded", concurrency=3)
    async def work(job: Job) -> None:
        nonlocal in_flight, peak, done
        in_flight += 1
        peak = max(peak, in_flight)
        await release.wait()
        in_flight -= 1
        done += 1

    async with app:
        for n in range(10):
            await app.enqueue(f"{uid}.bounded", Job(n))
        await wait_for(lambda: in_flight == 3)
        release.set()
        await wait_for(lambda: done == 10)
    assert peak == 3


async def test_enqueue_before_any_worker_keeps_the_job(make_app: MakeApp, uid: str) -> None:
    producer = make_app()
    async with producer:
        await producer.enqueue(f"{uid}.early", Job(1))
    worker = make_app()
    done: list[int] = []

    @worker.worker(f"{uid}.early")
    async def work(job: Job) -> None:
        done.append(job.n)

    async with worker:
        await wait_for(lambda: done == [1])


async def test_retry_backs_off_exponentially_then_dead_letters(make_app: MakeApp, uid: str) -> None:
    app = make_app()
    calls: list[float] = []

    @app.worker(f"{uid}.retry", retry=Retry(attempts=4, backoff=0.05, max_backoff=1, jitter=0.2))
    async def work(job: Job) -> None:
        calls.append(now())
        raise ValueError("always fails")

    async with app:
        await app.enqueue(f"{uid}.retry", Job(1))
        await wait_for(lambda: len(calls) == 4)
        letters = await wait_dead_letters(app, f"{uid}.retry", 1)
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    for gap, base in zip(gaps, (0.05, 0.1, 0.2), strict=True):
        assert base - RESOLUTION <= gap <= base * 1.2 + 0.15, gaps
    assert letters[0].failure is not None
    assert letters[0].failure.attempts == 4


async def test_retry_that_succeeds_acks_the_job(make_app: MakeApp, uid: str) -> None:
    app = make_app()
    attempts: list[tuple[int, int]] = []

    @app.worker(f"{uid}.flaky", concurrency=1, retry=Retry(attempts=3, backoff=0.01))
    async def work(job: Job, msg: Message) -> None:
        attempts.append((job.n, msg.attempt))
        if job.n == 1 and msg.attempt < 3:
            raise ConnectionError("flaky")

    async with app:
        await app.enqueue(f"{uid}.flaky", Job(1))
        await app.enqueue(f"{uid}.flaky", Job(2))  # handled only once job 1 is settled
        await wait_for(lambda: (2, 1) in attempts)
        assert await app.dead_letters(f"{uid}.flaky") == []
    assert attempts == [(1, 1), (1, 2), (1, 3), (2, 1)]


async def test_redeliver_then_dead_letter_with_the_failure(make_app: MakeApp, uid: str) -> None:
    app = make_app()
    seen: list[tuple[int, float]] = []

    @app.worker(f"{uid}.redeliver", redeliver=Redeliver(delays=(0.1, 0.3)))
    async def work(order: Order, msg: Message) -> None:
        seen.append((msg.attempt, now()))
        raise KeyError("no such customer")

    async with app:
        await app.enqueue(f"{uid}.redeliver", Order(id=9), headers={"tenant": "acme"})
        letters = await wait_dead_letters(app, f"{uid}.redeliver", 1)
    assert [attempt for attempt, _ in seen] == [1, 2, 3]
    assert seen[1][1] - seen[0][1] >= 0.1 - RESOLUTION
    assert seen[2][1] - seen[1][1] >= 0.3 - RESOLUTION
    letter = letters[0]
    assert letter.decode(Order) == Order(id=9)
    assert letter.headers["tenant"] == "acme"
    assert letter.failure is not None
    assert letter.failure.type == "KeyError"
    assert "no such customer" in letter.failure.message
    assert letter.failure.attempts == 3
    assert letter.failure.queue == f"{uid}.redeliver"
    assert abs(letter.failure.failed_at.timestamp() - time.time()) < 60


async def test_poison_payload_skips_retries(make_app: MakeApp, uid: str) -> None:
    app = make_app()
    calls = 0

    @app.worker(
        f"{uid}.poison",
        retry=Retry(attempts=5, backoff=0.01),
        redeliver=Redeliver(delays=(0.01,)),
    )
    async def work(order: Order) -> None:
        nonlocal calls
        calls += 1

    async with app:
        await app.enqueue(f"{uid}.poison", {"id": "not a number"})
        letters = await wait_dead_letters(app, f"{uid}.poison", 1)
    assert calls == 0
    assert letters[0].failure is not None
    assert letters[0].failure.type == "DecodeError"
    assert letters[0].failure.attempts == 1
    assert letters[0].body == b'{"id":"not a number"}'


async def test_reject_dead_letters_at_once(make_app: MakeApp, uid: str) -> None:
    app = make_app()
    calls = 0

    @app.worker(f"{uid}.reject", retry=Retry(attempts=5), redeliver=Redeliver(delays=(0.01,)))
    async def work(job: Job) -> None:
        nonlocal calls
        calls += 1
        raise Reject("customer deleted")

    async with app:
        await app.enqueue(f"{uid}.reject", Job(1))
        letters = await wait_dead_letters(app, f"{uid}.reject", 1)
    assert calls == 1
    assert letters[0].failure is not None
    assert letters[0].failure.type == "Reject"
    assert letters[0].failure.message == "customer deleted"


async def test_replay_puts_dead_letters_back(make_app: MakeApp, uid: str) -> None:
    app = make_app()
    fixed = False
    done: list[int] = []

    @app.worker(f"{uid}.replay")
    async def work(job: Job, msg: Message) -> None:
        if not fixed:
            raise RuntimeError("bug")
        assert msg.failure is None, "failure headers are removed on replay"
        done.append(job.n)

    async with app:
        for n in range(3):
            await app.enqueue(f"{uid}.replay", Job(n))
        await wait_dead_letters(app, f"{uid}.replay", 3)
        fixed = True
        assert await app.replay_dead_letters(f"{uid}.replay") == 3
        await wait_for(lambda: sorted(done) == [0, 1, 2])
        assert await app.dead_letters(f"{uid}.replay") == []


async def test_without_dead_letters_a_failed_job_is_dropped(make_app: MakeApp, uid: str) -> None:
    app = make_app()
    calls: list[int] = []

    @app.worker(f"{uid}.drop", concurrency=1, dead_letter=False)
    async def work(job: Job) -> None:
        calls.append(job.n)
        if job.n == 1:
            raise RuntimeError("fails for good")

    async with app:
        for n in (1, 2, 3):
            await app.enqueue(f"{uid}.drop", Job(n))
        await wait_for(lambda: 3 in calls)
        assert await app.dead_letters(f"{uid}.drop") == []
    assert calls == [1, 2, 3], "the failed job was not delivered again"


async def test_shutdown_waits_for_handlers_in_flight(make_app: MakeApp, uid: str) -> None:
    app = make_app(shutdown_timeout=10)
    started = asyncio.Event()
    release = asyncio.Event()
    finished: list[int] = []

    @app.worker(f"{uid}.drain")
    async def work(job: Job) -> None:
        started.set()
        await release.wait()
        finished.append(job.n)

    await app.start()
    await app.enqueue(f"{uid}.drain", Job(1))
    await started.wait()
    closing = asyncio.create_task(app.close())
    await wait_for(lambda: not app.ready, what="the App to stop taking jobs")
    assert not closing.done(), "close() waits for the handler in flight"
    release.set()
    await closing
    assert finished == [1]

    again = make_app()
    redelivered: list[int] = []

    @again.worker(f"{uid}.drain")
    async def work_again(job: Job) -> None:
        redelivered.append(job.n)

    async with again:
        await again.enqueue(f"{uid}.drain", Job(2))
        await wait_for(lambda: redelivered == [2])
    assert redelivered == [2], "the drained job was acked, not delivered again"


async def test_handler_cut_off_by_shutdown_is_delivered_again(make_app: MakeApp, uid: str) -> None:
    first = make_app(shutdown_timeout=0.1)
    started = asyncio.Event()

    @first.worker(f"{uid}.cut")
    async def hang(job: Job) -> None:
        started.set()
        await asyncio.Event().wait()

    async with first:
        await first.enqueue(f"{uid}.cut", Job(1))
        await started.wait()
    second = make_app()
    done: list[tuple[int, int]] = []

    @second.worker(f"{uid}.cut")
    async def work(job: Job, msg: Message) -> None:
        done.append((job.n, msg.attempt))

    async with second:
        await wait_for(lambda: len(done) == 1, what="the unacked job delivered again")
    assert done[0][0] == 1
    assert done[0][1] >= 2


async def test_attempts_count_calls_when_an_earlier_delivery_died(
    make_app: MakeApp, uid: str, backend: Backend
) -> None:
    requires(backend, "counts_returns")
    retry = Retry(attempts=3, backoff=0.01, max_backoff=0.02)
    seen: list[int] = []
    dying = make_app(shutdown_timeout=0)
    started = asyncio.Event()

    @dying.worker(f"{uid}.died", retry=retry)
    async def hang(job: Job, msg: Message) -> None:
        seen.append(msg.attempt)
        started.set()
        await asyncio.Event().wait()

    async with dying:  # its worker stops with the job's first call still running
        await dying.enqueue(f"{uid}.died", Job(1))
        await started.wait()
    survivor = make_app()

    @survivor.worker(f"{uid}.died", retry=retry)
    async def fail(job: Job, msg: Message) -> None:
        seen.append(msg.attempt)
        raise RuntimeError("still failing")

    async with survivor:
        letters = await wait_dead_letters(survivor, f"{uid}.died", 1)
    assert seen == [1, 2, 3, 4], "one call died, then three calls: attempts 1 to 4"
    assert letters[0].failure is not None
    assert letters[0].failure.attempts == 4


async def test_delivery_limit_dead_letters_a_job_that_keeps_killing_workers(
    make_app: MakeApp, uid: str, backend: Backend
) -> None:
    requires(backend, "delivery_limit")
    queue = f"{uid}.killer"
    producer = make_app(delivery_limit=2)
    async with producer:
        await producer.enqueue(queue, Job(1))
    for _ in range(2):  # each worker dies (shutdown_timeout=0) with the job unsettled
        dying = make_app(delivery_limit=2, shutdown_timeout=0)
        started = asyncio.Event()

        @dying.worker(queue)
        async def hang(job: Job, started: asyncio.Event = started) -> None:
            started.set()
            await asyncio.Event().wait()

        async with dying:
            await asyncio.wait_for(started.wait(), 10)
    checker = make_app(delivery_limit=2)
    calls = 0

    @checker.worker(queue)
    async def work(job: Job) -> None:
        nonlocal calls
        calls += 1

    async with checker:
        letters = await wait_dead_letters(checker, queue, 1)
    assert calls == 0
    assert letters[0].failure is not None
    assert letters[0].failure.type == "DeliveryLimitExceeded"


_ONE_JOB: contextvars.ContextVar[int | None] = contextvars.ContextVar("one", default=None)


@pytest.mark.parametrize("concurrency", [1, 2])
async def test_a_context_variable_one_job_sets_is_not_seen_by_the_next(
    make_app: MakeApp, uid: str, concurrency: int
) -> None:
    """Each job's handler runs in a context of its own, however the worker runs them (one after
    the other in one task, or a task each). Odd jobs' handlers wait once, even ones do not."""
    app = make_app()
    seen: list[int | None] = []

    @app.worker(f"{uid}.ctx", concurrency=concurrency)
    async def work(job: Job) -> None:
        seen.append(_ONE_JOB.get())
        _ONE_JOB.set(job.n)
        if job.n % 2:
            await asyncio.sleep(0)

    async with app:
        for n in range(20):
            await app.enqueue(f"{uid}.ctx", Job(n))
        await wait_for(lambda: len(seen) == 20, what="the 20 jobs handled")
    assert seen == [None] * 20


async def test_a_retried_job_does_not_see_what_its_failed_call_set(
    make_app: MakeApp, uid: str
) -> None:
    """``Retry`` calls the handler again in process: each call in a context of its own, so a
    context variable the failed call set is not seen by the next."""
    app = make_app()
    seen: list[tuple[int, int | None]] = []

    @app.worker(f"{uid}.ctx", retry=Retry(attempts=2, backoff=0))
    async def work(job: Job) -> None:
        seen.append((job.n, _ONE_JOB.get()))
        _ONE_JOB.set(job.n)
        if sum(n == job.n for n, _ in seen) == 1:
            raise ValueError("once")

    async with app:
        for n in range(3):
            await app.enqueue(f"{uid}.ctx", Job(n))
        await wait_for(lambda: len(seen) == 6, what="the 3 jobs called twice each")
    assert [value for _, value in seen] == [None] * 6
