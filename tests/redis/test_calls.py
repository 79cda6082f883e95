"""``redis.calls``: what the close does to the calls under way, without a server (each call
here waits on a future that Redis would have answered)."""

from __future__ import annotations

import asyncio

import pytest

from pigeon import BrokerError
from pigeon.transports.redis.calls import SEND, Calls

URL = "redis://127.0.0.1:6379/0"


async def _call(calls: Calls, answer: asyncio.Future[None], swallow: int = 0) -> None:
    """A call waiting for ``answer``; it swallows the first ``swallow`` cancels (as Python
    3.11's ``asyncio.wait_for`` can)."""
    with calls("publishing on 'a.b'", SEND):
        while True:
            try:
                await asyncio.shield(answer)
                return
            except asyncio.CancelledError:
                if swallow == 0:
                    raise
                swallow -= 1


async def test_a_call_answered_within_the_patience_is_done() -> None:
    calls, answer = Calls(URL), asyncio.get_running_loop().create_future()
    task = asyncio.create_task(_call(calls, answer))
    await asyncio.sleep(0)
    asyncio.get_running_loop().call_later(0.05, answer.set_result, None)
    await calls.settle(5.0)
    assert task.done()
    await task


@pytest.mark.parametrize("swallow", [0, 1, 2])
async def test_a_call_left_is_cut_with_a_broker_error_saying_the_app_closed(
    swallow: int,
) -> None:
    calls, answer = Calls(URL), asyncio.get_running_loop().create_future()
    task = asyncio.create_task(_call(calls, answer, swallow))
    await asyncio.sleep(0)
    await calls.settle(0.01)
    assert task.done()
    with pytest.raises(BrokerError, match=r"'a\.b': the App closed before the broker"):
        await task
    assert task.cancelling() == 0
    answer.cancel()


async def test_a_call_after_the_close_began_is_refused_at_once() -> None:
    calls = Calls(URL)
    await calls.settle(0)
    with pytest.raises(BrokerError, match="not connected"), calls("publishing on 'a.b'"):
        pytest.fail("the call ran")


async def test_the_callers_own_cancel_propagates() -> None:
    calls, answer = Calls(URL), asyncio.get_running_loop().create_future()
    task = asyncio.create_task(_call(calls, answer))
    await asyncio.sleep(0)
    task.cancel()  # the caller's, then the close's
    await calls.settle(0.01)
    with pytest.raises(asyncio.CancelledError):
        await task
    answer.cancel()
