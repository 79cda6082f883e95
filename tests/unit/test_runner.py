"""``HandlerRunner``, the bounded task runner every transport's subscriptions share."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest

from pigeon.errors import BrokerError
from pigeon.testing.waiting import wait_for
from pigeon.transports.runner import HandlerRunner, started_in, withdraw_own_cancel


async def test_calls_still_running_are_cancelled_by_drain() -> None:
    runner, started, cancelled = HandlerRunner(2), asyncio.Event(), []

    async def blocks() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(1)
            raise

    runner.start(blocks())
    await asyncio.wait_for(started.wait(), 5)
    assert runner.free == 1
    assert await runner.drain(0.01) == 1
    assert cancelled == [1]
    assert runner.free == 2


async def test_a_call_whose_task_was_cancelled_before_it_ran_is_closed_quietly() -> None:
    runner, ran = HandlerRunner(2), []

    async def call() -> None:
        ran.append(1)

    runner.start(call())
    for task in asyncio.all_tasks() - {asyncio.current_task()}:
        task.cancel()  # as the event loop's shutdown does
    await runner.drain(1)
    gc.collect()  # a coroutine never awaited would warn here (warnings are errors)
    assert ran == []
    assert runner.free == 2


async def test_a_failing_call_is_logged_and_frees_its_slot(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runner, done = HandlerRunner(1), asyncio.Event()

    async def fails() -> None:
        raise ValueError("boom")

    async def succeeds() -> None:
        done.set()

    with caplog.at_level(logging.ERROR, logger="pigeon"):
        runner.start(fails())
        assert runner.free == 0
        assert await runner.wait_free() == 1
        runner.start(succeeds())
        await asyncio.wait_for(done.wait(), 5)
    assert any("handler task failed" in r.message and r.exc_info for r in caplog.records)
    assert await runner.drain(1) == 0


async def _work_off(body: Callable[[int], Awaitable[None]]) -> HandlerRunner:
    """A runner of one slot that ran calls 1 to 4 of ``body``, 2 to 4 from its backlog."""
    backlog, done = [2, 3, 4], asyncio.Event()

    async def call(number: int) -> None:
        await body(number)
        if number == 4:
            done.set()

    runner = HandlerRunner(1, next_call=lambda: call(backlog.pop(0)) if backlog else None)
    runner.start(call(1))
    await asyncio.wait_for(done.wait(), 5)
    return runner


async def test_a_backlog_runs_in_the_slot_that_frees_not_a_task_per_call() -> None:
    tasks: dict[int, asyncio.Task[object] | None] = {}

    async def record_task(number: int) -> None:
        tasks[number] = asyncio.current_task()
        await asyncio.sleep(0)

    runner = await _work_off(record_task)
    assert sorted(tasks) == [1, 2, 3, 4]
    assert len(set(tasks.values())) == 1
    assert await runner.wait_free() == 1
    assert await runner.drain(1) == 0


async def test_drain_cancels_a_slot_working_off_a_backlog() -> None:
    started = asyncio.Event()

    async def first() -> None:
        pass

    async def blocks() -> None:
        started.set()
        await asyncio.Event().wait()

    backlog = [blocks]
    runner = HandlerRunner(1, next_call=lambda: backlog.pop()() if backlog else None)
    runner.start(first())
    await asyncio.wait_for(started.wait(), 5)
    assert runner.free == 0
    assert await runner.drain(0.01) == 1
    assert runner.free == 1


async def test_each_call_of_a_backlog_runs_in_a_context_of_its_own() -> None:
    var: contextvars.ContextVar[int | None] = contextvars.ContextVar("var", default=None)
    seen: dict[int, int | None] = {}

    async def set_var(number: int) -> None:
        seen[number] = var.get()
        var.set(number)
        await asyncio.sleep(0)
        assert var.get() == number  # kept across the call's own steps

    runner = await _work_off(set_var)
    assert seen == {1: None, 2: None, 3: None, 4: None}
    assert await runner.drain(1) == 0


async def test_a_call_that_cancels_its_slots_task_hands_the_backlog_to_a_new_task() -> None:
    backlog = [2, 3]
    ran: list[int] = []
    done = asyncio.Event()

    def call(number: int) -> Coroutine[Any, Any, None]:
        async def handle() -> None:
            if number == 1:
                task = asyncio.current_task()
                assert task is not None
                task.cancel()
            await asyncio.sleep(0)
            ran.append(number)
            if number == 3:
                done.set()

        return handle()

    runner = HandlerRunner(1, next_call=lambda: call(backlog.pop(0)) if backlog else None)
    runner.start(call(1))
    await asyncio.wait_for(done.wait(), 5)
    assert ran == [2, 3]
    assert await runner.wait_free() == 1
    assert await runner.drain(1) == 0


async def test_a_slot_cancelled_by_drain_starts_no_other() -> None:
    started = asyncio.Event()
    backlog: list[Coroutine[Any, Any, None]] = []

    async def blocks() -> None:
        started.set()
        await asyncio.Event().wait()

    async def never() -> None:
        raise AssertionError("ran after drain")

    backlog.append(never())
    runner = HandlerRunner(1, next_call=lambda: backlog.pop() if backlog else None)
    runner.start(blocks())
    await asyncio.wait_for(started.wait(), 5)
    assert await runner.drain(0.01) == 1
    assert runner.free == 1
    backlog.pop().close()


async def test_started_in_runs_each_step_of_a_call_in_the_context_given() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="outside")
    seen: list[str] = []

    async def call(waits: bool) -> None:
        var.set("inside")
        if waits:
            await asyncio.sleep(0)  # a bare yield: the first step yields None
        seen.append(var.get())

    assert started_in(contextvars.copy_context(), call(waits=False)) is None
    rest = started_in(contextvars.copy_context(), call(waits=True))
    assert rest is not None
    assert seen == ["inside"]  # the waiting call is not finished yet
    await rest
    assert seen == ["inside", "inside"]
    assert var.get() == "outside"  # the caller's context is untouched


# -- a burst: one task while no call waits, a task per call once one does --------------------


async def _burst(runner: HandlerRunner, calls: list[Coroutine[Any, Any, None]]) -> None:
    """Start ``calls`` one after the other in one step, as a connection's reader hands on a
    read of many messages."""
    for call in calls:
        assert runner.free > 0
        runner.start(call)


async def test_a_burst_of_calls_that_never_wait_runs_in_one_task() -> None:
    tasks: list[asyncio.Task[Any] | None] = []

    async def quick() -> None:
        tasks.append(asyncio.current_task())

    runner = HandlerRunner(64)
    await _burst(runner, [quick() for _ in range(50)])
    assert runner.free == 64 - 50  # queued calls hold their slots

    async def all_ran() -> bool:
        return len(tasks) == 50

    await wait_for(all_ran, timeout=5, what="every call to run")
    assert await runner.wait_free() == 64
    assert len(set(tasks)) == 1  # a task per call before: 50


@pytest.mark.parametrize("waits_at", [0, 1, 25])
async def test_calls_that_wait_all_run_at_once_up_to_the_limit(waits_at: int) -> None:
    """Calls from the ``waits_at``-th on wait for a gate: every one of them is in progress at
    once, each in a task of its own; none waits for another to finish."""
    gate, in_progress, most = asyncio.Event(), [0], [0]
    tasks: set[asyncio.Task[Any] | None] = set()

    async def call(number: int) -> None:
        in_progress[0] += 1
        most[0] = max(most[0], in_progress[0])
        if number >= waits_at:
            tasks.add(asyncio.current_task())
            await gate.wait()
        in_progress[0] -= 1

    runner = HandlerRunner(40)
    await _burst(runner, [call(n) for n in range(40)])

    async def all_waiting() -> bool:
        return len(tasks) == 40 - waits_at

    await wait_for(all_waiting, timeout=5, what="every waiting call to start")
    assert most[0] == 40 - waits_at
    assert runner.free == waits_at
    gate.set()
    assert await runner.drain(5) == 0
    assert runner.free == 40


async def test_each_call_of_a_burst_runs_in_a_context_of_its_own() -> None:
    var: contextvars.ContextVar[int | None] = contextvars.ContextVar("var", default=None)
    seen: dict[int, int | None] = {}

    async def call(number: int) -> None:
        seen[number] = var.get()
        var.set(number)
        if number % 3 == 0:
            await asyncio.sleep(0)  # some wait: the rest go to tasks of their own
        assert var.get() == number

    runner = HandlerRunner(16)
    await _burst(runner, [call(n) for n in range(12)])
    assert await runner.drain(5) == 0
    assert seen == dict.fromkeys(range(12))


async def test_a_call_of_a_burst_that_cancels_its_task_ends_only_itself() -> None:
    ran: list[int] = []

    async def call(number: int) -> None:
        if number == 2:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            await asyncio.sleep(0)
        ran.append(number)

    runner = HandlerRunner(16)
    await _burst(runner, [call(n) for n in range(6)])
    assert await runner.drain(5) == 0
    assert sorted(ran) == [0, 1, 3, 4, 5]
    assert runner.free == 16


async def test_drain_runs_the_queued_calls_and_cancels_what_outlasts_it() -> None:
    ran: list[int] = []

    async def call(number: int) -> None:
        if number == 0:
            await asyncio.Event().wait()  # outlasts the drain
        ran.append(number)

    runner = HandlerRunner(8)
    await _burst(runner, [call(n) for n in range(5)])
    assert await runner.drain(0.05) == 1  # drained before the first task ran a step
    gc.collect()  # a queued call never awaited would warn here (warnings are errors)
    assert sorted(ran) == [1, 2, 3, 4]
    assert runner.free == 8


async def test_a_burst_whose_task_was_cancelled_before_it_ran_still_runs_the_queued_calls() -> None:
    """The first call's task is cancelled before it runs (its call is closed, never awaited);
    the calls queued behind it get tasks of their own at the drain."""
    ran: list[int] = []

    async def call(number: int) -> None:
        ran.append(number)

    runner = HandlerRunner(8)
    await _burst(runner, [call(n) for n in range(5)])
    for task in asyncio.all_tasks() - {asyncio.current_task()}:
        task.cancel()  # as the event loop's shutdown does, before the slot's task ran
    await runner.drain(1)
    gc.collect()
    assert sorted(ran) == [1, 2, 3, 4]
    assert runner.free == 8


async def test_a_call_that_cancels_its_task_and_returns_does_not_cancel_the_next() -> None:
    """The cancellation it asked for is withdrawn once it returned: the calls that run after it
    in the same task (queued behind it, or a backlog) never see it."""
    ran: list[int] = []

    async def call(number: int) -> None:
        if number == 0:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()  # and returns without waiting: the cancellation is still pending
            return
        await asyncio.sleep(0)
        ran.append(number)

    backlog = [7, 8]
    runner = HandlerRunner(1, next_call=lambda: call(backlog.pop(0)) if backlog else None)
    runner.start(call(0))
    burst = HandlerRunner(16)
    await _burst(burst, [call(n) for n in range(6)])

    async def all_ran() -> bool:
        return sorted(ran) == [1, 2, 3, 4, 5, 7, 8]

    await wait_for(all_ran, timeout=5, what="every call after the cancelling one to finish")
    assert await runner.drain(1) == 0
    assert await burst.drain(1) == 0


_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("runner_var", default="unset")


@pytest.mark.parametrize("given", [{}, {"app's": True}])
async def test_the_context_given_is_what_queued_calls_start_from_too(
    given: dict[str, bool],
) -> None:
    """``context=`` (the App's, empty when no variable is set, which is falsy): every call of a
    burst starts from it, not from the caller's, whether queued and spread or not."""
    context = contextvars.Context()
    if given:
        context.run(_VAR.set, "app's")
    seen: dict[int, str] = {}
    gate = asyncio.Event()

    async def call(n: int) -> None:
        seen[n] = _VAR.get()
        await gate.wait()  # waits: the queued calls are spread to tasks of their own

    runner = HandlerRunner(8, context=context)
    _VAR.set("caller's")  # the reading task's own variable
    await _burst(runner, [call(n) for n in range(4)])

    async def all_started() -> bool:
        return len(seen) == 4

    await wait_for(all_started, timeout=5, what="every call to start")
    gate.set()
    assert await runner.drain(5) == 0
    assert seen == dict.fromkeys(range(4), "app's" if given else "unset")


async def test_a_call_that_cancels_its_task_while_draining_does_not_cancel_the_next() -> None:
    ran: list[str] = []
    release = asyncio.Event()

    async def first() -> None:
        await release.wait()
        task = asyncio.current_task()
        assert task is not None
        task.cancel()  # and returns

    async def second() -> None:
        await asyncio.sleep(0.01)
        ran.append("second")

    backlog = [second]
    runner = HandlerRunner(1, next_call=lambda: backlog.pop()() if backlog else None)
    runner.start(first())  # its task runs first, then the drain, then the release: in order
    drain = asyncio.ensure_future(runner.drain(2))
    asyncio.get_running_loop().call_soon(release.set)
    assert await drain == 0
    assert ran == ["second"]


async def test_a_cancellation_that_comes_during_the_withdrawal_is_raised() -> None:
    outcome: list[str] = []

    async def victim() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()  # its own, pending
        asyncio.get_running_loop().call_soon(task.cancel)  # the App's, during the withdrawal
        try:
            await withdraw_own_cancel(task)
        except asyncio.CancelledError:
            outcome.append("raised")
            raise
        outcome.append("swallowed")

    task = asyncio.ensure_future(victim())
    await asyncio.wait([task])
    assert outcome == ["raised"]
    assert task.cancelled()


async def test_a_settlement_the_broker_failed_is_one_warning_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runner = HandlerRunner(2)

    async def acks_on_a_lost_connection() -> None:  # what a pattern's handle raises then
        raise BrokerError("acknowledging a message failed: the connection is gone")

    async def has_a_bug() -> None:
        raise KeyError("pigeon's own fault")

    with caplog.at_level(logging.INFO, logger="pigeon"):
        runner.start(acks_on_a_lost_connection())
        runner.start(has_a_bug())
        await wait_for(lambda: len(caplog.records) == 2, what="both logged")
    settling, bug = sorted(caplog.records, key=lambda r: r.levelno)
    assert settling.levelno == logging.WARNING
    assert settling.exc_info is None
    assert "settling its message failed" in settling.getMessage()
    assert "the connection is gone" in settling.getMessage()
    assert bug.levelno == logging.ERROR
    assert bug.exc_info is not None
