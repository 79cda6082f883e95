"""Whatever a handler raises is that message's failure: a ``BaseException`` subclass, a
``CancelledError`` of its own, an exception whose ``str()`` raises. A job is then retried or
dead-lettered and its worker goes on; a caller gets ``RemoteError`` at once. Only the App stopping
(cancellation, ``SystemExit``, ``KeyboardInterrupt``) stops a handler, and an rpc caller whose
server stopped before answering hears so at once (``ServerStopped``), not at its deadline.
"""

from __future__ import annotations

import asyncio

import pytest

from pigeon import RemoteError
from pigeon.testing.conformance.fixtures import MakeApp
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_dead_letters, wait_for


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for this error")


class Fatal(BaseException):
    """A ``BaseException`` subclass a library might raise."""


def _raise(kind: str) -> None:
    if kind == "base-exception":
        raise Fatal("out of the ordinary")
    if kind == "own-cancel":
        raise asyncio.CancelledError("the handler's own")
    raise Unprintable


KINDS = ["base-exception", "own-cancel", "unprintable"]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_job_whose_handler_raises_anything_is_dead_lettered_and_the_worker_goes_on(
    make_app: MakeApp, uid: str, kind: str
) -> None:
    app = make_app()
    done: list[int] = []

    @app.worker(f"{uid}.jobs", concurrency=1)
    async def work(job: Job) -> None:
        if job.n == 1:
            _raise(kind)
        done.append(job.n)

    async with app:
        await app.enqueue(f"{uid}.jobs", Job(1))
        await app.enqueue(f"{uid}.jobs", Job(2))
        letters = await wait_dead_letters(app, f"{uid}.jobs", 1)
        await wait_for(lambda: done == [2], what="the next job, on the same single slot")
    assert letters[0].failure is not None
    assert letters[0].failure.type in {"Fatal", "CancelledError", "Unprintable"}


@pytest.mark.parametrize("kind", KINDS)
async def test_an_rpc_handler_raising_anything_is_a_remote_error_at_once(
    make_app: MakeApp, uid: str, kind: str
) -> None:
    server, client = make_app(), make_app()

    @server.rpc(f"{uid}.ask")
    async def ask(n: int) -> int:
        _raise(kind)
        return n

    async with server, client:
        with pytest.raises(RemoteError) as caught:
            await client.request(f"{uid}.ask", 1, timeout=20)
    assert caught.value.type in {"Fatal", "CancelledError", "Unprintable"}


async def test_a_caller_hears_at_once_that_the_server_stopped_before_answering(
    make_app: MakeApp, uid: str
) -> None:
    server, client = make_app(shutdown_timeout=0.1), make_app()
    started, never = asyncio.Event(), asyncio.Event()

    @server.rpc(f"{uid}.slow")
    async def slow(n: int) -> int:
        started.set()
        await never.wait()
        return n

    async with client:
        await server.start()
        asking = asyncio.create_task(client.request(f"{uid}.slow", 1, timeout=20))
        await asyncio.wait_for(started.wait(), 10)
        await server.close()
        with pytest.raises(RemoteError) as caught:
            await asyncio.wait_for(asking, 10)  # long before the request's own 20 s
    assert caught.value.type == "ServerStopped"
