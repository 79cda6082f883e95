"""Deliveries a closing consumer hands back come again in the order they were sent.

A durable subscription or a worker closing with deliveries in its handlers hands them back (a
RabbitMQ requeue, a JetStream redelivery, a Redis Streams give-back); whoever takes them next,
one at a time, gets them in publish order and before anything sent after them: whether it was
already waiting for work, whether several members close one after another, whether another
member still holds earlier deliveries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from pigeon import App, Message
from pigeon.testing.conformance.fixtures import Backend, MakeApp, known_gap, requires
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_for

HANDED_BACK = 8
BUSY = 4
CLASSIC_GAP = {"rabbitmq-classic": "a returned job goes to the back of a classic queue"}
"""A classic queue's returned job is sent again to count its return (classic queues keep no
delivery count), so it goes last: the one backend where these tests are a known gap."""


def _kind(request: pytest.FixtureRequest, backend: Backend, kind: str, strict: bool = True) -> None:
    if kind == "durable":
        requires(backend, "durable")
    else:
        known_gap(request, backend, CLASSIC_GAP, strict)


def _options(backend: Backend, **options: Any) -> dict[str, Any]:
    """``options``, and on Redis a ``claim_idle`` short enough for a test."""
    return {"claim_idle": 1.0, **options} if backend.name.startswith("redis") else options


class Consumers:
    """Apps consuming ``address`` as durable subscribers (one durable name) or as workers."""

    def __init__(self, make_app: MakeApp, backend: Backend, kind: str, address: str) -> None:
        self.make_app, self.backend, self.kind, self.address = make_app, backend, kind, address
        self.durable = f"{address}-d"
        self.started: list[int] = []
        self.got: list[int] = []
        self.attempts: list[int] = []

    def member(self, concurrency: int, *, taking: bool = False, **options: Any) -> App:
        """An App whose handler records each event and, unless ``taking``, never returns (its
        deliveries are cut off, so handed back, when it closes)."""
        app = self.make_app(**_options(self.backend, **options))
        handler = self._in_turn if taking else self._stuck
        if self.kind == "durable":
            app.subscribe(self.address, durable=self.durable, concurrency=concurrency)(handler)
        else:
            app.worker(self.address, concurrency=concurrency)(handler)
        return app

    async def _stuck(self, event: Job) -> None:
        self.started.append(event.n)
        await asyncio.Event().wait()

    async def _in_turn(self, event: Job, message: Message) -> None:
        self.got.append(event.n)
        self.attempts.append(message.attempt)

    def sender(self, publisher: App) -> Callable[[int], Awaitable[None]]:
        async def send(n: int) -> None:
            if self.kind == "durable":
                await publisher.publish(self.address, Job(n))
            else:
                await publisher.enqueue(self.address, Job(n))

        return send

    async def busy(self, count: int) -> None:
        await wait_for(lambda: len(self.started) == count, what=f"{count} handlers busy")

    async def cut_off(
        self, closing: App, publisher: App, count: int
    ) -> Callable[[int], Awaitable[None]]:
        """Start ``closing`` (a member of ``BUSY``), send it ``count`` messages and wait until its
        ``BUSY`` handlers are stuck on the first ones; returns the sender."""
        await closing.start()
        send = self.sender(publisher)
        for n in range(count):
            await send(n)
        await self.busy(BUSY)
        return send


@pytest.mark.parametrize("kind", ["durable", "worker"])
async def test_deliveries_handed_back_at_close_come_again_in_publish_order(
    request: pytest.FixtureRequest, backend: Backend, make_app: MakeApp, uid: str, kind: str
) -> None:
    """The closing member held ``BUSY`` and left the rest waiting: a new member gets all of
    them in order."""
    _kind(request, backend, kind)
    group = Consumers(make_app, backend, kind, f"{uid}.placed")
    closing = group.member(BUSY, shutdown_timeout=0.01)
    taking = group.member(1, taking=True)
    async with make_app() as publisher:
        await group.cut_off(closing, publisher, HANDED_BACK)
        await closing.close()
        async with taking:
            await wait_for(lambda: len(group.got) == HANDED_BACK, what="every one taken again")
    assert group.got == list(range(HANDED_BACK)), group.got


@pytest.mark.parametrize("kind", ["durable", "worker"])
async def test_a_member_already_waiting_gets_the_handed_back_ones_before_newer(
    request: pytest.FixtureRequest, backend: Backend, make_app: MakeApp, uid: str, kind: str
) -> None:
    """A member waiting for work when another closes gets what that one held first, then an
    event sent after the close (on a classic queue, in some runs only: its returns are sent
    again, and may or may not reach the queue before the new event)."""
    _kind(request, backend, kind, strict=False)
    group = Consumers(make_app, backend, kind, f"{uid}.placed")
    closing = group.member(BUSY, shutdown_timeout=0.01)
    taking = group.member(1, taking=True)
    async with make_app() as publisher:
        send = await group.cut_off(closing, publisher, BUSY)
        async with taking:  # nothing for it yet: it waits
            await closing.close()
            await send(BUSY)
            await wait_for(lambda: len(group.got) == BUSY + 1, what="every one taken")
    assert group.got == list(range(BUSY + 1)), group.got
    assert group.attempts == [2] * BUSY + [1], group.attempts  # theirs second, its first


async def test_members_closing_in_turn_hand_back_in_publish_order(
    request: pytest.FixtureRequest, backend: Backend, make_app: MakeApp, uid: str
) -> None:
    """Two workers close one after the other, the one holding the earlier jobs first; the
    jobs come again in the order they were sent, not the later closer's first."""
    known_gap(request, backend, CLASSIC_GAP)
    group = Consumers(make_app, backend, "worker", f"{uid}.jobs")
    first, second = (group.member(2, shutdown_timeout=0.01) for _ in range(2))
    taking = group.member(1, taking=True)
    async with make_app() as publisher:
        send = group.sender(publisher)
        await first.start()
        for n in range(2):
            await send(n)
        await group.busy(2)
        await second.start()
        for n in range(2, 5):
            await send(n)
        await group.busy(4)
        await first.close()
        await second.close()
        async with taking:
            await wait_for(lambda: len(group.got) == 5, what="every job taken")
    assert group.got == list(range(5)), group.got


PEER_HOLDS = 12
"""Jobs a busy worker keeps while another closes: more than ten times the taker's concurrency
(Redis's ``XAUTOCLAIM`` looks at no more than ten times its ``COUNT`` entries a call)."""


async def test_handed_back_jobs_come_before_newer_while_a_peer_holds_earlier_ones(
    request: pytest.FixtureRequest, backend: Backend, make_app: MakeApp, uid: str
) -> None:
    """A busy worker keeps ``PEER_HOLDS`` early jobs; another closes with the next ``BUSY``;
    a new worker gets those before the jobs sent after them."""
    known_gap(request, backend, CLASSIC_GAP)
    group = Consumers(make_app, backend, "worker", f"{uid}.jobs")
    peer = group.member(PEER_HOLDS, shutdown_timeout=0.01)
    closing = group.member(BUSY, shutdown_timeout=0.01)
    taking = group.member(1, taking=True)
    last = PEER_HOLDS + 2 * BUSY
    async with make_app() as publisher, peer:
        send = group.sender(publisher)
        for n in range(PEER_HOLDS):
            await send(n)
        await group.busy(PEER_HOLDS)
        await closing.start()
        for n in range(PEER_HOLDS, last):
            await send(n)
        await group.busy(PEER_HOLDS + BUSY)
        await closing.close()
        async with taking:
            await wait_for(lambda: len(group.got) == 2 * BUSY, what="the jobs after the peer's")
    assert group.got == list(range(PEER_HOLDS, last)), group.got
