"""Request-reply at its edges: closing under waiting callers, and timeouts in every phase."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator

import pytest

from pigeon import (
    App,
    BrokerError,
    ConfigurationError,
    Message,
    NoResponders,
    RemoteError,
    RequestTimeout,
)
from pigeon.testing.conformance.fixtures import Backend, MakeApp, cancel_own_task, known_gap
from pigeon.testing.waiting import wait_for


async def test_closing_fails_every_waiting_request_at_once(make_app: MakeApp, uid: str) -> None:
    server, client = make_app(), make_app()
    release = asyncio.Event()
    received: list[int] = []

    @server.rpc(f"{uid}.stuck")
    async def stuck(n: int) -> int:
        received.append(n)
        await release.wait()
        return n

    async with server:
        await client.start()
        waiting = [
            asyncio.create_task(client.request(f"{uid}.stuck", n, timeout=60)) for n in range(3)
        ]
        await wait_for(lambda: len(received) == 3, what="the three requests at the server")
        await client.close()
        async with asyncio.timeout(5):  # at once, not after the 60 s deadline
            results = await asyncio.gather(*waiting, return_exceptions=True)
        release.set()
    assert all(isinstance(r, BrokerError) for r in results), results


async def test_closing_fails_the_requests_still_being_sent(make_app: MakeApp, uid: str) -> None:
    """Requests sent as the caller's App closes end at once with a pigeon error, whatever phase
    each was in (a request still being sent when close failed the others raised ``KeyError``)."""
    server, client = make_app(), make_app()
    release = asyncio.Event()

    @server.rpc(f"{uid}.stuck", concurrency=256)
    async def stuck(n: int) -> int:
        await release.wait()
        return n

    async with server:
        await client.start()
        calls = [client.request(f"{uid}.stuck", n, timeout=60) for n in range(200)]
        waiting = [asyncio.create_task(call) for call in calls]
        await asyncio.sleep(0)  # every request on its way, none answered
        await client.close()
        late = [
            asyncio.create_task(client.request(f"{uid}.stuck", n, timeout=60)) for n in range(50)
        ]
        async with asyncio.timeout(10):  # at once, not after the 60 s deadline
            results = await asyncio.gather(*waiting, *late, return_exceptions=True)
        release.set()
    odd = [r for r in results if not isinstance(r, BrokerError | NoResponders)]
    assert not odd, odd[:3]


async def test_a_request_without_a_correlation_id_is_correlated_by_its_id(
    make_app: MakeApp, uid: str
) -> None:
    server, client = make_app(), make_app()
    seen: list[tuple[str | None, str]] = []

    @server.rpc(f"{uid}.ids")
    async def ids(n: int, msg: Message) -> int:
        seen.append((msg.correlation_id, msg.message_id))
        return n

    async with server, client:
        assert await client.request(f"{uid}.ids", 1, reply=int) == 1
    [(correlation_id, message_id)] = seen
    assert correlation_id == message_id


@pytest.mark.parametrize("timeout", [0.001, 0.01])
async def test_a_first_request_out_of_time_is_a_request_timeout(
    make_app: MakeApp, uid: str, timeout: float
) -> None:
    server, client = make_app(), make_app()

    @server.rpc(f"{uid}.slow")
    async def slow(n: int) -> int:
        await asyncio.sleep(0.05)  # longer than the caller's deadline, on purpose
        return n

    async with server, client:
        with pytest.raises(RequestTimeout):
            await client.request(f"{uid}.slow", 1, timeout=timeout)


async def test_many_short_requests_end_in_replies_or_request_timeouts(
    make_app: MakeApp, uid: str
) -> None:
    server, client = make_app(), make_app()

    @server.rpc(f"{uid}.echo", concurrency=8)
    async def echo(n: int) -> int:
        return n

    async with server, client:
        results = await asyncio.gather(
            *(client.request(f"{uid}.echo", n, timeout=0.2) for n in range(500)),
            return_exceptions=True,
        )
    wrong = [
        r for r in results if isinstance(r, BaseException) and not isinstance(r, RequestTimeout)
    ]
    assert wrong == [], wrong[:3]


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), -1, 0])
async def test_a_timeout_that_is_not_a_positive_finite_number_is_refused_at_the_call(
    make_app: MakeApp, uid: str, timeout: float
) -> None:
    app = make_app()

    @app.rpc(f"{uid}.echo")
    async def echo(n: int) -> int:
        return n

    async with app:
        with pytest.raises(ConfigurationError, match="positive finite"):
            await app.request(f"{uid}.echo", 1, timeout=timeout)
        assert await app.request(f"{uid}.echo", 2, timeout=5) == 2  # the App still serves


_ONE_REQUEST: contextvars.ContextVar[int | None] = contextvars.ContextVar("one", default=None)


@pytest.mark.parametrize("concurrency", [1, 2])
async def test_a_context_variable_one_request_sets_is_not_seen_by_the_next(
    make_app: MakeApp, uid: str, concurrency: int
) -> None:
    """Each request's handler runs in a context of its own (as a task of its own would), also
    when it runs after another in the same task: one after the other (``concurrency=1``) or in
    a slot that frees (NATS's backlog). Odd requests' handlers wait once, even ones do not."""
    server, client = make_app(), make_app()
    seen: list[int | None] = []

    @server.rpc(f"{uid}.ctx", concurrency=concurrency)
    async def ctx(n: int) -> int:
        seen.append(_ONE_REQUEST.get())
        _ONE_REQUEST.set(n)
        if n % 2:
            await asyncio.sleep(0)
        return n

    async with server, client:
        replies = await asyncio.gather(
            *(client.request(f"{uid}.ctx", n, timeout=10) for n in range(40))
        )
    assert replies == list(range(40))
    assert seen == [None] * 40


_STARTED: contextvars.ContextVar[str | None] = contextvars.ContextVar("started", default=None)


@pytest.mark.parametrize("concurrency", [1, 2])
async def test_a_context_variable_the_lifespan_sets_is_seen_by_every_request(
    make_app: MakeApp, uid: str, concurrency: int
) -> None:
    """What the server's lifespan sets (after it connected) is in every handler call's context
    (on NATS, requests start in the connection's reading task, made before the lifespan ran)."""
    server, client = make_app(), make_app()
    seen: list[str | None] = []

    @server.lifespan
    async def lifespan(app: App) -> AsyncIterator[None]:
        _STARTED.set("lifespan")
        yield

    @server.rpc(f"{uid}.ctx", concurrency=concurrency)
    async def ctx(n: int) -> int:
        seen.append(_STARTED.get())
        if n % 2:
            await asyncio.sleep(0)
        return n

    async with server, client:
        replies = await asyncio.gather(
            *(client.request(f"{uid}.ctx", n, timeout=10) for n in range(20))
        )
    assert replies == list(range(20))
    assert seen == ["lifespan"] * 20


@pytest.mark.parametrize("concurrency", [1, 2])
async def test_requests_waiting_for_a_slot_are_answered_when_handlers_cancel_their_own_task(
    make_app: MakeApp, uid: str, concurrency: int
) -> None:
    """A handler whose task is cancelled (by the handler, not the App) ends that request with
    ``ServerStopped``; the requests waiting for a slot still run (on NATS they waited for the
    slot's task, which ended, until their deadline)."""
    server, client = make_app(), make_app()
    calls = 0

    @server.rpc(f"{uid}.cancels", concurrency=concurrency)
    async def cancels(n: int) -> int:
        nonlocal calls
        calls += 1
        if calls <= concurrency:  # every slot's first call, while the other requests wait
            cancel_own_task()
        await asyncio.sleep(0.05)
        return n

    async with server, client:
        results = await asyncio.gather(
            *(client.request(f"{uid}.cancels", n, timeout=5) for n in range(12)),
            return_exceptions=True,
        )
    stopped = [r for r in results if isinstance(r, RemoteError) and r.type == "ServerStopped"]
    assert len(stopped) == concurrency, results
    assert all(r == n for n, r in enumerate(results) if not isinstance(r, BaseException))
    assert sum(isinstance(r, int) for r in results) == 12 - concurrency, results


OVERLAP_GAP = {
    "nats": "the servers of every matching subject share one queue group (pigeon-rpc), so NATS "
    "spreads the requests over all of them",
}


OVERLAPS = {
    "a.b, a.*, a.>": {"a.b": "a.b", "a.c": "a.*", "a.c.d": "a.>"},
    "a.+, a.*": {"a.+": "a.+", "a.c": "a.*"},  # RabbitMQ names the queue of a.* 'a.+'
}
"""Servers' patterns, and which one each request's subject must reach."""


@pytest.mark.parametrize("overlap", OVERLAPS)
async def test_of_servers_whose_subjects_overlap_the_most_specific_answers(
    make_app: MakeApp, uid: str, request: pytest.FixtureRequest, backend: Backend, overlap: str
) -> None:
    """Requests on ``a.b``, ``a.c`` and ``a.c.d`` with servers of ``a.b``, ``a.*`` and ``a.>``
    (or ``a.+`` and ``a.c`` with servers of the literal ``a.+`` and ``a.*``): each request is
    handled once, by the most specific server (``subjects.specificity``)."""
    known_gap(request, backend, OVERLAP_GAP)
    reaches = OVERLAPS[overlap]
    servers = {pattern: make_app() for pattern in overlap.split(", ")}
    calls: dict[str, list[str]] = {pattern: [] for pattern in servers}
    for pattern, server in servers.items():

        @server.rpc(f"{uid}.{pattern}")
        async def answer(n: int, message: Message, pattern: str = pattern) -> None:
            calls[pattern].append(message.subject.removeprefix(f"{uid}."))

    client = make_app()
    async with contextlib.AsyncExitStack() as apps:
        for app in (*servers.values(), client):
            await apps.enter_async_context(app)
        for subject in reaches:
            for n in range(10):
                await client.request(f"{uid}.{subject}", n)
    # a copy of an earlier request queued at another server was handled before the last answer
    assert calls == {reaches[s]: [s] * 10 for s in reaches}, calls


@pytest.mark.parametrize("timeout", [1e9, 1e12])
async def test_a_huge_timeout_is_taken_and_leaves_the_other_requests_alone(
    make_app: MakeApp, uid: str, timeout: float
) -> None:
    """A timeout past what a broker takes as a message's expiration (RabbitMQ: 2^32 - 1 ms)
    must not close the channel every request shares: the concurrent request is answered."""
    server, client = make_app(), make_app()
    huge_answered = asyncio.Event()

    @server.rpc(f"{uid}.echo", concurrency=2)
    async def echo(n: int) -> int:
        if n == 2:  # held until the huge request was answered, so that both are in flight
            await huge_answered.wait()
        return n

    async with server, client:
        inflight = asyncio.create_task(client.request(f"{uid}.echo", 2, timeout=10))
        assert await client.request(f"{uid}.echo", 1, timeout=timeout) == 1
        huge_answered.set()
        assert await inflight == 2
        assert await client.request(f"{uid}.echo", 3, timeout=5) == 3
