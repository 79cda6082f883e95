"""Composition rules found by a tester's trial (issue 15): what a handler's first parameter is,
dependency cleanup cannot turn a failure into a success, ``Timeout`` bounds the call and not the
cleanup and says what timed out, overlapping rpc subjects and handlers included twice are refused,
send middleware where it never runs is refused."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import pytest

from pigeon import (
    App,
    ConfigurationError,
    Depends,
    Message,
    RemoteError,
    Retry,
    Router,
    Timeout,
)
from pigeon.middleware import CallNext
from pigeon.routing import overlap
from pigeon.testing.waiting import wait_dead_letters, wait_for

calls: list[str] = []


def database() -> str:
    calls.append("database")
    return "db-handle"


# -- 1. the first parameter is the body only if it is no dependency --------------------------------


def test_a_dependency_in_first_position_is_refused_not_filled_with_the_body() -> None:
    app = App("memory://")
    with pytest.raises(ConfigurationError, match="first parameter 'conn' is a dependency"):

        @app.rpc("first.dep")
        async def handle(conn: Annotated[str, Depends(database)]) -> str:
            return conn


def test_a_handler_taking_only_its_message_or_the_app_is_told_to_add_a_body_first() -> None:
    app = App("memory://")
    with pytest.raises(ConfigurationError, match="add a body parameter first"):

        @app.rpc("first.message")
        async def handle(msg: Message) -> None: ...

    with pytest.raises(ConfigurationError, match="add a body parameter first"):

        @app.rpc("first.app")
        async def handle_app(served: App) -> None: ...


# -- 3. cleanup cannot turn the handler's failure into a success ---------------------------------

swallowed: list[str] = []


async def swallowing() -> AsyncIterator[str]:
    try:
        yield "tx"
    except Exception as exc:  # no re-raise: the dependency swallows the handler's error
        swallowed.append(type(exc).__name__)


def swallowing_sync() -> Iterator[str]:
    try:
        yield "tx"
    except Exception as exc:
        swallowed.append(type(exc).__name__)


async def swallowing_everything() -> AsyncIterator[str]:
    try:
        yield "tx"
    except BaseException as exc:
        swallowed.append(type(exc).__name__)


async def test_a_dependency_swallowing_the_handlers_error_does_not_make_it_succeed(
    uid: str, caplog: pytest.LogCaptureFixture
) -> None:
    swallowed.clear()
    app = App(f"memory://{uid}")

    @app.rpc("swallow.async")
    async def fails(n: int, tx: Annotated[str, Depends(swallowing)]) -> int:
        raise ValueError("handler failed")

    @app.rpc("swallow.sync")
    async def fails_too(n: int, tx: Annotated[str, Depends(swallowing_sync)]) -> int:
        raise ValueError("handler failed")

    @app.worker("swallow.jobs", dead_letter=True)
    async def work(n: int, tx: Annotated[str, Depends(swallowing)]) -> None:
        raise ValueError("job failed")

    async with app:
        for subject in ("swallow.async", "swallow.sync"):
            with pytest.raises(RemoteError, match="handler failed"):
                await app.request(subject, 1)
        await app.enqueue("swallow.jobs", 1)
        (letter,) = await wait_dead_letters(app, "swallow.jobs", 1)
        assert letter.failure is not None
        assert letter.failure.type == "ValueError"
    assert swallowed == ["ValueError", "ValueError", "ValueError"]
    assert "swallowed" in caplog.text


async def test_a_dependency_swallowing_cancellation_keeps_it_a_cancellation(uid: str) -> None:
    swallowed.clear()
    app = App(f"memory://{uid}")
    started = asyncio.Event()

    @app.worker("swallow.cancel", middleware=[Timeout(0.05)])
    async def slow(n: int, tx: Annotated[str, Depends(swallowing_everything)]) -> None:
        started.set()
        await asyncio.sleep(10)

    async with app:
        await app.enqueue("swallow.cancel", 1)
        (letter,) = await wait_dead_letters(app, "swallow.cancel", 1)
    assert letter.failure is not None
    assert letter.failure.type == "TimeoutError"
    assert swallowed == ["CancelledError"]


# -- 4. Timeout bounds the handler call, not the cleanup after it --------------------------------

cleaned: list[str] = []


async def slow_commit() -> AsyncIterator[str]:
    yield "tx"
    await asyncio.sleep(0.2)
    cleaned.append("committed")


async def test_timeout_does_not_cancel_dependency_cleanup(uid: str) -> None:
    cleaned.clear()
    ran: list[int] = []
    app = App(f"memory://{uid}")

    @app.worker("commit.jobs", middleware=[Timeout(0.1)], retry=Retry(attempts=2, backoff=0.01))
    async def work(n: int, tx: Annotated[str, Depends(slow_commit)]) -> None:
        ran.append(n)

    async with app:
        await app.enqueue("commit.jobs", 1)
        await wait_for(lambda: cleaned == ["committed"], what="the commit after yield")
        assert await app.dead_letters("commit.jobs") == []
    assert ran == [1], "the handler returned on time: no retry"


# -- 5, 13. Timeout says what timed out; a sync handler's late error is kept ----------------------


async def test_a_timeout_failure_says_what_timed_out(uid: str) -> None:
    app = App(f"memory://{uid}")

    @app.worker("slow.jobs", middleware=[Timeout(0.05)])
    async def slow(n: int) -> None:
        await asyncio.sleep(10)

    @app.rpc("slow.rpc", middleware=[Timeout(0.05)])
    async def slow_rpc(n: int) -> int:
        await asyncio.sleep(10)
        return n

    async with app:
        await app.enqueue("slow.jobs", 1)
        (letter,) = await wait_dead_letters(app, "slow.jobs", 1)
        with pytest.raises(RemoteError) as caught:
            await app.request("slow.rpc", 1)
    assert letter.failure is not None
    assert letter.failure.type == "TimeoutError"
    assert letter.failure.message == "worker 'slow.jobs' exceeded Timeout(0.05s)"
    assert caught.value.type == "TimeoutError"
    assert caught.value.message == "rpc 'slow.rpc' exceeded Timeout(0.05s)"


async def test_a_sync_handler_failing_after_its_timeout_fails_with_its_own_error(
    uid: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = App(f"memory://{uid}")

    @app.worker("late.jobs", middleware=[Timeout(0.05)])
    def late(n: int) -> None:
        time.sleep(0.2)
        raise ValueError("late failure")

    async with app:
        await app.enqueue("late.jobs", 1)
        (letter,) = await wait_dead_letters(app, "late.jobs", 1)
    assert letter.failure is not None
    assert (letter.failure.type, letter.failure.message) == ("ValueError", "late failure")
    assert "exceeded Timeout(0.05s)" in caplog.text
    assert "second SIGINT" not in caplog.text, "no shutdown is under way"


# -- 7. overlapping rpc subjects in one App -------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("x.*", "x.y", True),
        ("x.>", "x.y.z", True),
        ("x.>", "x", False),
        ("*.y", "x.*", True),
        ("x.y", "x.z", False),
        ("x.*", "x.y.z", False),
        (">", "a", True),
        ("a.*.c", "a.b.d", False),
        ("a.>", "*.b", True),
    ],
)
def test_overlap_of_two_subject_patterns(a: str, b: str, expected: bool) -> None:
    assert overlap(a, b) is expected
    assert overlap(b, a) is expected


def test_overlapping_rpc_subjects_in_one_app_are_refused() -> None:
    wild, exact = Router(prefix="x."), Router(prefix="x.")

    @wild.rpc("*")
    async def any_of(n: int) -> str:
        return "wild"

    @exact.rpc("y")
    async def y(n: int) -> str:
        return "exact"

    app = App("memory://")
    app.include(wild)
    with pytest.raises(ConfigurationError, match=r"rpc subjects 'x\.y' and 'x\.\*' overlap"):
        app.include(exact)
    with pytest.raises(ConfigurationError, match="overlap"):

        @app.rpc("x.>")
        async def rest(n: int) -> str:
            return "rest"


# -- 8, 11. send middleware where it never runs; a send that skips a request ----------------------


class SendOnly:
    async def send(self, message: Message, call_next: CallNext) -> Any:
        return await call_next(message)


class SkipSend:
    async def send(self, message: Message, call_next: CallNext) -> Any:
        return None


def test_send_only_middleware_on_a_router_or_handler_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"send.*belongs to the App"):
        Router(middleware=[SendOnly()])
    app = App("memory://")
    with pytest.raises(ConfigurationError, match=r"send.*belongs to the App"):

        @app.rpc("send.only", middleware=[SendOnly()])
        async def handle(n: int) -> int:
            return n


async def test_a_send_middleware_skipping_a_request_is_a_clear_error(uid: str) -> None:
    app = App(f"memory://{uid}", middleware=[SkipSend()])

    @app.rpc("skipped.rpc")
    async def handle(n: int) -> int:
        return n

    async with app:
        with pytest.raises(ConfigurationError, match="returned None for a request"):
            await app.request("skipped.rpc", 1)
        await app.publish("skipped.event", 1)  # skipping a publish drops it, no error


# -- 9. the same handler on the same subject twice ------------------------------------------------


def test_the_same_subscriber_included_twice_is_refused() -> None:
    router = Router()

    @router.subscribe("twice.ev", group="g")
    async def handle(n: int) -> None: ...

    parent = Router()
    parent.include(router)
    app = App("memory://")
    app.include(router)
    with pytest.raises(ConfigurationError, match=r"already subscribed to 'twice\.ev'"):
        app.include(parent)


def test_one_function_may_subscribe_under_two_groups() -> None:
    app = App("memory://")

    async def handle(n: int) -> None: ...

    app.subscribe("two.groups", group="a")(handle)
    app.subscribe("two.groups", group="b")(handle)
    assert len(app.handlers) == 2


def test_send_only_middleware_on_a_router_is_named_by_its_class() -> None:
    class OnlySend:
        async def send(self, message: Message, call_next: Any) -> Any:
            return await call_next(message)

    with pytest.raises(
        ConfigurationError, match=r"middleware .*OnlySend only has 'send'"
    ) as caught:
        Router(middleware=[OnlySend()])
    assert " object at 0x" not in str(caught.value)
