"""How the RabbitMQ transport's close ends the sends under way (``transports/sends.py``); the
conformance suite's ``sends_at_close`` runs the same on the broker."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from pigeon import BrokerError
from pigeon.transports.sends import CUT_EVERY, READ, Sends


async def _stuck(sends: Sends, waiting_on: asyncio.Future[None]) -> None:
    with sends("publishing on 'x'"):
        await waiting_on


async def test_a_send_the_close_cannot_wait_for_fails_saying_the_app_closed() -> None:
    sends = Sends("amqp://h/")
    task = asyncio.create_task(_stuck(sends, asyncio.get_running_loop().create_future()))
    await asyncio.sleep(0)  # the send under way
    await sends.settle(0.01)
    with pytest.raises(BrokerError, match="publishing on 'x': the App closed"):
        await task
    assert task.cancelling() == 0  # the caller's task is not left cancelled


async def test_the_close_waits_for_a_send_that_finishes_within_its_patience() -> None:
    sends = Sends("amqp://h/")
    confirm = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(_stuck(sends, confirm))
    await asyncio.sleep(0)
    settling = asyncio.create_task(sends.settle(10))
    await asyncio.sleep(0)
    assert not settling.done()
    confirm.set_result(None)
    await settling
    await task  # done, not cut


async def test_a_send_after_the_close_began_fails_at_once() -> None:
    sends = Sends("amqp://h/")
    await sends.settle(0)
    with pytest.raises(BrokerError, match="not connected"):
        await _stuck(sends, asyncio.get_running_loop().create_future())


async def test_a_cancelled_future_under_a_send_is_a_broker_error() -> None:
    """aiormq cancels the confirm a closing channel still waits for: no bare CancelledError."""
    sends = Sends("amqp://h/")
    confirm = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(_stuck(sends, confirm))
    await asyncio.sleep(0)
    confirm.cancel()
    with pytest.raises(BrokerError, match="the connection closed under it"):
        await task


@pytest.mark.parametrize("also_cut", [False, True])
async def test_the_callers_own_cancellation_propagates(also_cut: bool) -> None:
    sends = Sends("amqp://h/")
    task = asyncio.create_task(_stuck(sends, asyncio.get_running_loop().create_future()))
    await asyncio.sleep(0)
    task.cancel()
    if also_cut:
        await sends.settle(0)
    with pytest.raises(asyncio.CancelledError):
        await task


async def _read(sends: Sends, waiting_on: asyncio.Future[None]) -> None:
    with sends("reading the backlog of 'q'", READ):
        await waiting_on


async def test_a_read_the_close_cuts_says_to_call_it_again() -> None:
    sends = Sends("amqp://h/")
    task = asyncio.create_task(_read(sends, asyncio.get_running_loop().create_future()))
    await asyncio.sleep(0)
    await sends.settle(0.01)
    with pytest.raises(BrokerError, match="the App closed before the broker answered") as err:
        await task
    assert str(err.value).endswith("call it again once an App is running")


async def _swallowing_one_cancel(sends: Sends) -> None:
    """A read that catches the first cancel and goes on waiting, as Python 3.11's
    ``asyncio.wait_for`` can."""
    with sends("reading the backlog of 'q'", READ):
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.get_running_loop().create_future()
        await asyncio.get_running_loop().create_future()


async def test_a_call_that_swallowed_the_cut_is_cut_again() -> None:
    sends = Sends("amqp://h/")
    task = asyncio.create_task(_swallowing_one_cancel(sends))
    await asyncio.sleep(0)
    async with asyncio.timeout(CUT_EVERY * 4):
        await sends.settle(0.01)
    with pytest.raises(BrokerError, match="the App closed"):
        await task
    assert task.cancelling() == 0


async def test_nested_calls_of_one_task_end_once() -> None:
    """A call inside another (a replay's existence check) is reported by the outer one."""
    sends = Sends("amqp://h/")

    async def outer() -> None:
        with sends("replaying the dead letters of 'q'", "replay again"):
            await _read(sends, asyncio.get_running_loop().create_future())

    task = asyncio.create_task(outer())
    await asyncio.sleep(0)
    await sends.settle(0.01)
    with pytest.raises(BrokerError, match=r"replaying .* replay again once an App is running"):
        await task
