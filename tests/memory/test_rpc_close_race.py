"""The App closing in the turn an rpc handler returns, having cancelled its own task: the caller
still hears the answer (the close's cancellation lands in the withdrawal of the handler's own,
after the handler answered; it used to be raised before the reply went)."""

from __future__ import annotations

import asyncio
import uuid

from pigeon import App
from pigeon.errors import RemoteError
from pigeon.testing.waiting import wait_for


def _close_grace(loop: asyncio.AbstractEventLoop) -> asyncio.TimerHandle | None:
    """The timer of ``close()``'s wait for the handler (``asyncio.wait``'s timeout), if set."""
    timers = [
        handle
        for handle in loop._scheduled  # type: ignore[attr-defined]
        if getattr(handle._callback, "__name__", "") == "_release_waiter"
        and not handle.cancelled()
        and handle.when() < loop.time() + 0.5  # close()'s grace, not the request's timeout
    ]
    return max(timers, key=lambda handle: handle.when()) if timers else None


async def test_the_caller_hears_the_answer_when_close_lands_as_the_handler_returns() -> None:
    name = f"race{uuid.uuid4().hex[:8]}"
    url = f"memory://{name}"
    server, client = App(url, shutdown_timeout=0.3), App(url)
    started, release = asyncio.Event(), asyncio.Event()
    returned: list[str] = []

    @server.rpc(name, concurrency=1)
    async def handle(n: int) -> str:
        started.set()
        await release.wait()
        task = asyncio.current_task()
        assert task is not None
        task.cancel()  # and returns at once
        returned.append("answer")
        return "answer"

    loop = asyncio.get_running_loop()
    await server.start()
    await client.start()
    try:
        request = asyncio.ensure_future(client.request(name, 1, reply=str, timeout=2))
        await asyncio.wait_for(started.wait(), 2)
        closing = asyncio.ensure_future(server.close())
        await wait_for(lambda: _close_grace(loop) is not None, timeout=2, what="close() to wait")
        grace = _close_grace(loop)
        assert grace is not None
        loop.call_at(grace.when() - 1e-6, release.set)  # the same turn, just before
        try:
            answer: object = await request
        except RemoteError as exc:
            answer = exc
        await closing
    finally:
        await client.close()
        await server.close()
    assert returned == ["answer"], "the handler did not get to return (the race was missed)"
    assert answer == "answer", answer
