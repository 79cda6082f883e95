"""Middleware semantics every transport must give: order, headers, skipping, exceptions raised or
changed in middleware (retry, redelivery and dead letters still apply), Timeout, Deduplicate."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pigeon import Deduplicate, Message, Redeliver, Reject, RemoteError, Retry, Router, Timeout
from pigeon.deduplicate import DeduplicationStore, MemoryStore, RedisStore
from pigeon.middleware import CallNext, Outcome
from pigeon.testing.conformance.fixtures import Backend, MakeApp, requires
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_dead_letters, wait_for

REDIS_URL = os.environ.get("PIGEON_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
"""Where ``RedisStore`` is tested; unreachable: skipped, failed under PIGEON_REQUIRE_BROKERS=1."""


class Record:
    """Appends ``<name>>`` before and ``<<name>`` after the rest of the chain, sending too."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    async def handle(self, message: Message, call_next: CallNext) -> Any:
        self.log.append(f"{self.name}>")
        result = await call_next(message)
        self.log.append(f"<{self.name}")
        return result

    async def send(self, message: Message, call_next: CallNext) -> Any:
        self.log.append(f"send {self.name}")
        return await call_next(message)


async def test_app_then_router_then_handler_middleware(make_app: MakeApp, uid: str) -> None:
    log: list[str] = []
    router = Router(prefix=f"{uid}.", middleware=[Record("router", log)])

    @router.rpc("double", middleware=[Record("handler", log)])
    async def double(n: int) -> int:
        log.append("call")
        return n * 2

    app = make_app(middleware=[Record("app", log)])
    app.include(router)
    async with app:
        assert await app.request(f"{uid}.double", 21) == 42
    assert log == [
        "send app",
        "app>",
        "router>",
        "handler>",
        "call",
        "<handler",
        "<router",
        "<app",
    ]


class Stamp:
    """Adds a header to what is sent, and sends ``.moved`` messages to ``.landed``."""

    async def send(self, message: Message, call_next: CallNext) -> Any:
        message.headers["x-stamp"] = "stamped"
        if message.subject.endswith(".moved"):
            message = dataclasses.replace(message, subject=message.subject[:-6] + ".landed")
        return await call_next(message)


class ReadStamp:
    """Passes the stamp on to the handler under another header."""

    async def handle(self, message: Message, call_next: CallNext) -> Any:
        message.headers["x-seen"] = message.headers.get("x-stamp", "none")
        return await call_next(message)


async def test_send_middleware_sets_headers_and_subject(make_app: MakeApp, uid: str) -> None:
    sender, receiver = make_app(middleware=[Stamp()]), make_app(middleware=[ReadStamp()])
    got: list[tuple[int, str, str]] = []

    @receiver.subscribe(f"{uid}.landed")
    async def on_event(n: int, msg: Message) -> None:
        got.append((n, msg.headers["x-stamp"], msg.headers["x-seen"]))

    @receiver.worker(f"{uid}.landed")
    async def on_job(job: Job, msg: Message) -> None:
        got.append((job.n, msg.headers["x-stamp"], msg.headers["x-seen"]))

    async with receiver, sender:
        await sender.publish(f"{uid}.moved", 1)
        await sender.enqueue(f"{uid}.moved", Job(2))
        await wait_for(lambda: len(got) == 2)
    assert sorted(got) == [(1, "stamped", "stamped"), (2, "stamped", "stamped")]


class SkipMarked:
    """Answers for the handler when the message has an ``x-skip`` header."""

    async def handle(self, message: Message, call_next: CallNext) -> Any:
        if "x-skip" in message.headers:
            return message.headers["x-skip"]
        return await call_next(message)


async def test_middleware_skips_the_handler(make_app: MakeApp, uid: str) -> None:
    app = make_app(middleware=[SkipMarked()])
    handled: list[int] = []

    @app.worker(f"{uid}.jobs")
    async def work(job: Job) -> None:
        handled.append(job.n)

    @app.rpc(f"{uid}.echo")
    async def echo(text: str) -> str:
        return f"handler: {text}"

    async with app:
        await app.enqueue(f"{uid}.jobs", Job(1), headers={"x-skip": ""})
        await app.enqueue(f"{uid}.jobs", Job(2))
        reply = await app.request(f"{uid}.echo", "hi", reply=str, headers={"x-skip": "cached"})
        assert reply == "cached"
        assert await app.request(f"{uid}.echo", "hi", reply=str) == "handler: hi"
        await wait_for(lambda: handled == [2])
        assert await app.dead_letters(f"{uid}.jobs") == []


class TimeoutToReject:
    """A handler that times out is rejected: dead-lettered at once, never retried."""

    async def handle(self, message: Message, call_next: CallNext) -> Any:
        try:
            return await call_next(message)
        except TimeoutError as exc:
            raise Reject("took too long") from exc


async def test_middleware_changes_the_exception(make_app: MakeApp, uid: str) -> None:
    app = make_app(middleware=[TimeoutToReject()])
    calls = 0

    @app.worker(f"{uid}.slow", retry=Retry(attempts=3, backoff=0.01), middleware=[Timeout(0.05)])
    async def slow(job: Job) -> None:
        nonlocal calls
        calls += 1
        await asyncio.Event().wait()

    async with app:
        await app.enqueue(f"{uid}.slow", Job(1))
        letters = await wait_dead_letters(app, f"{uid}.slow", 1)
    assert calls == 1
    assert letters[0].failure is not None
    assert letters[0].failure.type == "Reject"
    assert letters[0].failure.message == "took too long"


class FailEveryCall:
    def __init__(self) -> None:
        self.calls = 0

    async def handle(self, message: Message, call_next: CallNext) -> Any:
        self.calls += 1
        raise RuntimeError(f"refused call {message.attempt}")


async def test_middleware_error_is_retried_redelivered_dead_lettered(
    make_app: MakeApp, uid: str
) -> None:
    failing = FailEveryCall()
    app = make_app(middleware=[failing])

    @app.worker(
        f"{uid}.refused",
        retry=Retry(attempts=2, backoff=0.01),
        redeliver=Redeliver(delays=(0.1,)),
    )
    async def work(job: Job) -> None:
        raise AssertionError("the middleware never lets a call through")

    async with app:
        await app.enqueue(f"{uid}.refused", Job(1))
        letters = await wait_dead_letters(app, f"{uid}.refused", 1)
    assert failing.calls == 4
    assert letters[0].failure is not None
    assert letters[0].failure.type == "RuntimeError"
    assert letters[0].failure.message == "refused call 4"
    assert letters[0].failure.attempts == 4


async def test_timeout_cancels_the_handler_and_the_retry_runs(make_app: MakeApp, uid: str) -> None:
    app = make_app()
    attempts: list[int] = []
    cancelled = asyncio.Event()

    @app.worker(f"{uid}.hang", retry=Retry(attempts=2, backoff=0.01), middleware=[Timeout(0.05)])
    async def work(job: Job, msg: Message) -> None:
        attempts.append(msg.attempt)
        if msg.attempt == 1:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise

    @app.rpc(f"{uid}.stuck", middleware=[Timeout(0.05)])
    async def stuck(n: int) -> int:
        await asyncio.Event().wait()
        return n

    async with app:
        await app.enqueue(f"{uid}.hang", Job(1))
        await wait_for(lambda: attempts == [1, 2] and cancelled.is_set())
        with pytest.raises(RemoteError) as caught:
            await app.request(f"{uid}.stuck", 1, timeout=5)
        assert caught.value.type == "TimeoutError"
        assert await app.dead_letters(f"{uid}.hang") == []


class CrashBeforeAck:
    """Lets the handler return, then hangs until the App is shut down: the job is never acked,
    as when a worker dies between its handler and the ack."""

    def __init__(self) -> None:
        self.returned = asyncio.Event()

    async def handle(self, message: Message, call_next: CallNext) -> Any:
        await call_next(message)
        self.returned.set()
        await asyncio.Event().wait()


class SeenIds:
    """Records each message id once the rest of the chain is done with it."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    async def handle(self, message: Message, call_next: CallNext) -> Any:
        result = await call_next(message)
        self.ids.append(message.message_id)
        return result


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[DeduplicationStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    redis_store = RedisStore(REDIS_URL, prefix="pigeon:test:dedup:")
    try:
        await redis_store.client.ping()
    except Exception as exc:
        await redis_store.close()
        reason = f"Redis for RedisStore unreachable at {REDIS_URL}: {exc}"
        if os.environ.get("PIGEON_REQUIRE_BROKERS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    yield redis_store
    await redis_store.close()


async def test_deduplicate_runs_a_job_once_across_a_worker_crash(
    make_app: MakeApp, uid: str, store: DeduplicationStore
) -> None:
    queue, handled = f"{uid}.once", []
    crash = CrashBeforeAck()
    first = make_app(shutdown_timeout=0.1, middleware=[crash])

    @first.worker(queue, middleware=[Deduplicate(store, ttl=60)])
    async def work(job: Job) -> None:
        handled.append(job.n)

    async with first:
        await first.enqueue(queue, Job(1))
        await crash.returned.wait()
    seen = SeenIds()
    second = make_app(middleware=[seen])

    @second.worker(queue, middleware=[Deduplicate(store, ttl=60)])
    async def work_again(job: Job) -> None:
        handled.append(job.n)

    async with second:
        await second.enqueue(queue, Job(2))
        await wait_for(lambda: len(seen.ids) == 2, what="the unacked job delivered again")
        assert await second.dead_letters(queue) == []
    assert sorted(handled) == [1, 2], "the job delivered twice ran its handler once"


class Settled:
    """Records how each delivery was settled: ``(job, handler calls so far, outcome)``."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int, Outcome]] = []

    async def settled(self, message: Message, outcome: Outcome) -> None:
        self.seen.append((message.decode(Job).n, message.attempt, outcome))


class BrokenSettled:
    async def settled(self, message: Message, outcome: Outcome) -> None:
        raise RuntimeError("a broken settled hook")


async def test_settled_tells_how_each_delivery_ended(make_app: MakeApp, uid: str) -> None:
    settled = Settled()
    app = make_app(middleware=[BrokenSettled(), settled])

    @app.worker(f"{uid}.settle", redeliver=Redeliver(delays=(0.05,)))
    async def work(job: Job) -> None:
        if job.n == 2:
            raise RuntimeError("fails for good")
        if job.n == 3:
            raise Reject("poison")

    @app.worker(f"{uid}.drop", dead_letter=False)
    async def drop(job: Job) -> None:
        raise RuntimeError("dropped")

    async with app:
        for n in (1, 2, 3):
            await app.enqueue(f"{uid}.settle", Job(n))
        await app.enqueue(f"{uid}.drop", Job(4))
        await wait_for(lambda: len(settled.seen) == 5, what="five deliveries settled")
        assert len(await app.dead_letters(f"{uid}.settle")) == 2, "told after the broker was"
    assert sorted(settled.seen) == [
        (1, 1, Outcome.ACKED),
        (2, 1, Outcome.REDELIVERED),
        (2, 2, Outcome.DEAD_LETTERED),
        (3, 1, Outcome.DEAD_LETTERED),
        (4, 1, Outcome.DISCARDED),
    ]


async def test_settled_reports_a_job_over_the_delivery_limit(
    make_app: MakeApp, uid: str, backend: Backend
) -> None:
    requires(backend, "delivery_limit")
    queue, settled = f"{uid}.limit", Settled()
    dying = make_app(delivery_limit=1, shutdown_timeout=0, middleware=[settled])
    started = asyncio.Event()

    @dying.worker(queue)
    async def hang(job: Job) -> None:
        started.set()
        await asyncio.Event().wait()

    async with dying:
        await dying.enqueue(queue, Job(1))
        await asyncio.wait_for(started.wait(), 10)
    checker = make_app(delivery_limit=1, middleware=[settled])

    @checker.worker(queue)
    async def work(job: Job) -> None:
        raise AssertionError("a job over the delivery limit is not handled")

    async with checker:
        await wait_dead_letters(checker, queue, 1)
        await wait_for(lambda: settled.seen != [], what="the dead letter reported")
    assert settled.seen == [(1, 1, Outcome.DEAD_LETTERED)], "cut off unsettled: not reported"
