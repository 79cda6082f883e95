"""A reader whose stream and group went (a server restarted without persistence, an rpc stream
that expired) makes them again. When that fails for a while (here an ACL refuses ``XGROUP``, as a
server still starting refuses commands), it says so, tries again a second later and goes on:
it never ends (an rpc server that answered nothing more, a group that got no more events) and
never retries in a tight loop (a worker sent thousands of scripts a second)."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from pigeon import App, RequestTimeout
from pigeon.testing.conformance.models import Job, Order
from pigeon.testing.waiting import wait_for
from tests.brokers.redis import RedisServer

FAILED_TWICE = 2
"""Warnings of a reader that failed to make its group again: at least two, a second apart."""

SCRIPT_CALLS_WHILE_REFUSED = 50
"""Most script calls the App may make while its readers wait: about one a second each with the
fix; a worker retrying at once made ~2,000 a second."""


def _warned(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(1 for r in caplog.records if r.name == "pigeon" and text in r.getMessage())


async def _script_calls(raw: Redis) -> int:
    stats = await raw.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def _answers(caller: App, n: int) -> bool:
    try:
        return await caller.request("re.rpc", Order(id=n), reply=Order, timeout=0.5) == Order(id=n)
    except RequestTimeout:
        return False


async def test_readers_make_their_group_again_after_failing_to(
    own_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    app, caller = App(own_server.url), App(own_server.url)
    events: list[int] = []
    jobs: list[int] = []

    @app.rpc("re.rpc")
    async def echo(order: Order) -> Order:
        return order

    @app.subscribe("re.events", group="billing")
    async def on_event(order: Order) -> None:
        events.append(order.id)

    @app.worker("re.jobs")
    async def work(job: Job) -> None:
        jobs.append(job.n)

    raw = Redis.from_url(own_server.url)
    try:
        async with app, caller:
            assert await _answers(caller, 0)
            await raw.execute_command("ACL", "SETUSER", "default", "-xgroup")
            await raw.delete(
                "pigeon:rpc:re.rpc", "pigeon:group:billing:re.events", "pigeon:q:re.jobs"
            )
            await wait_for(
                lambda: (
                    _warned(caplog, "joining pigeon:rpc:re.rpc again failed") >= FAILED_TWICE
                    and _warned(caplog, "joining pigeon:group:billing:re.events again failed") >= 1
                ),
                what="the rpc server and the group to fail to join again, then try again",
            )
            before = await _script_calls(raw)
            await wait_for(
                lambda: _warned(caplog, "declaring pigeon:q:re.jobs again failed") >= FAILED_TWICE,
                what="the worker to fail to declare its queue again, then try again",
            )
            calls = await _script_calls(raw) - before
            assert calls < SCRIPT_CALLS_WHILE_REFUSED, (
                f"{calls} scripts while refused: a tight loop"
            )
            await raw.execute_command("ACL", "SETUSER", "default", "+xgroup")

            await wait_for(lambda: _answers(caller, 1), what="the rpc server to answer again")
            for n in range(3):
                await caller.enqueue("re.jobs", Job(n))
            await wait_for(lambda: jobs == [0, 1, 2], what="the worker to take jobs again")
            await wait_for(lambda: _group_gets(caller, events), what="the group to get events")
    finally:
        await raw.aclose()


async def _group_gets(caller: App, events: list[int]) -> bool:
    """Publish one more event; true once the group got any (its member joined again, within its
    heartbeat, after the ACL allowed it)."""
    await caller.publish("re.events", Order(id=len(events) + 1))
    return bool(events)
