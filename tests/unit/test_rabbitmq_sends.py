"""How the RabbitMQ transport's close ends the sends under way (``transports/sends.py``); the
conformance suite's ``sends_at_close`` runs the same on the broker."""

from __future__ import annotations

import asyncio

import pytest

from pigeon import BrokerError
from pigeon.transports.sends import Sends


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
