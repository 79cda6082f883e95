"""Each pattern's messages reach only its own handlers: a request only rpc servers, an event only
subscribers, a job only workers, whatever else listens on the same name; nobody serving a request
is ``NoResponders`` at once."""

from __future__ import annotations

import asyncio
import time

import pytest

from pigeon import Message, NoResponders
from pigeon.errors import ConfigurationError
from pigeon.testing.conformance.fixtures import MakeApp
from pigeon.testing.waiting import wait_for

SETTLE = 0.3
"""Seconds to let a message that should not arrive show up, after the ones that should have."""

AT_ONCE = 2.0
"""Seconds within which ``NoResponders`` must come (the request's timeout is far longer)."""


async def _no_responders(app: object, subject: str) -> None:
    started = time.monotonic()
    with pytest.raises(NoResponders):
        await app.request(subject, {"a": 1}, timeout=20)  # type: ignore[attr-defined]
    assert time.monotonic() - started < AT_ONCE, "NoResponders came late"


async def test_a_request_never_reaches_a_subscriber(make_app: MakeApp, uid: str) -> None:
    app = make_app()
    events: list[object] = []

    @app.subscribe(f"{uid}.audit.>")
    async def audit(event: dict[str, int]) -> None:
        events.append(event)

    @app.subscribe(f"{uid}.audit.inventory.reserve")
    async def exact(event: dict[str, int]) -> None:
        events.append(event)

    async with app:
        await _no_responders(app, f"{uid}.audit.inventory.reserve")
        await asyncio.sleep(SETTLE)
    assert events == [], "the request was handled as an event"


async def test_an_event_never_reaches_an_rpc_server(make_app: MakeApp, uid: str) -> None:
    app = make_app()
    calls: list[object] = []
    events: list[object] = []

    @app.rpc(f"{uid}.inventory.reserve")
    async def reserve(body: dict[str, int]) -> int:
        calls.append(body)
        return 1

    @app.rpc(f"{uid}.stock.*")
    async def stock(body: dict[str, int]) -> int:
        calls.append(body)
        return 1

    @app.subscribe(f"{uid}.inventory.reserve")
    async def audit(event: dict[str, int]) -> None:
        events.append(event)

    async with app:
        await app.publish(f"{uid}.inventory.reserve", {"a": 1})
        await app.publish(f"{uid}.stock.count", {"a": 2})
        await wait_for(lambda: events == [{"a": 1}], what="the event at its subscriber")
        await asyncio.sleep(SETTLE)
        assert calls == [], "an event ran an rpc handler"
        assert await app.request(f"{uid}.inventory.reserve", {"a": 3}) == 1
    assert calls == [{"a": 3}]


async def test_a_request_never_reaches_a_worker(make_app: MakeApp, uid: str) -> None:
    app = make_app()
    jobs: list[object] = []

    @app.worker(f"{uid}.invoices.render")
    async def render(job: dict[str, int]) -> None:
        jobs.append(job)

    async with app:
        await _no_responders(app, f"{uid}.invoices.render")
        await app.enqueue(f"{uid}.invoices.render", {"a": 2})
        await wait_for(lambda: jobs == [{"a": 2}], what="the job at its worker")
        await asyncio.sleep(SETTLE)
    assert jobs == [{"a": 2}], "the request was handled as a job"
    assert await _empty_dead_letters(app, f"{uid}.invoices.render")


async def _empty_dead_letters(app: object, queue: str) -> bool:
    async with app:  # type: ignore[attr-defined]
        return await app.dead_letters(queue) == []  # type: ignore[attr-defined,no-any-return]


async def test_a_job_never_reaches_a_subscriber_or_an_rpc_server(
    make_app: MakeApp, uid: str
) -> None:
    app = make_app()
    seen: list[str] = []
    queue = f"{uid}.invoices.render"

    @app.subscribe(f"{uid}.invoices.>")
    async def audit(event: dict[str, int]) -> None:
        seen.append("event")

    @app.worker(queue)
    async def render(job: dict[str, int]) -> None:
        seen.append("job")

    async with app:
        await app.enqueue(queue, {"a": 1})
        await wait_for(lambda: "job" in seen, what="the job at its worker")
        await asyncio.sleep(SETTLE)
    assert seen == ["job"]


async def test_a_request_never_reaches_a_durable_or_group_subscription(
    make_app: MakeApp, uid: str
) -> None:
    app = make_app()
    events: list[object] = []

    @app.subscribe(f"{uid}.orders.created", durable=f"{uid}.audit")
    async def audit(event: dict[str, int]) -> None:
        events.append(event)

    @app.subscribe(f"{uid}.orders.paid", group="billing")
    async def bill(event: dict[str, int]) -> None:
        events.append(event)

    async with app:
        await _no_responders(app, f"{uid}.audit")  # named like the durable subscription
        await _no_responders(app, f"{uid}.orders.paid:billing")  # like a group's queue
        await asyncio.sleep(SETTLE)
    assert events == [], "a request was handled as an event"


async def test_a_subscriber_to_everything_gets_only_events(make_app: MakeApp, uid: str) -> None:
    app = make_app()
    subjects: list[str] = []
    jobs: list[int] = []

    @app.subscribe(">")
    async def everything(event: bytes, msg: Message) -> None:
        if uid in msg.subject:
            subjects.append(msg.subject)

    @app.rpc(f"{uid}.double")
    async def double(n: int) -> int:
        return 2 * n

    @app.worker(f"{uid}.jobs")
    async def work(n: int) -> None:
        jobs.append(n)

    async with app:
        for n in range(5):  # a subscriber's answer must never beat the server's
            assert await app.request(f"{uid}.double", n) == 2 * n
        await app.enqueue(f"{uid}.jobs", 7)
        await app.publish(f"{uid}.event", 1)
        await wait_for(lambda: jobs == [7] and bool(subjects), what="the job and the event")
        await asyncio.sleep(SETTLE)
    assert subjects == [f"{uid}.event"], "only the event reached the subscriber"


RESERVED = ("_PIGEON.RPC.>", "_INBOX.x", "$JS.API.>", "$SYS.>", "$KV.b.k", "$O.b", "$SRV.PING")
"""Subjects under pigeon's and NATS's reserved prefixes: no handler or send may use them."""


@pytest.mark.parametrize("subject", [*RESERVED, "pigeon.queue.q.jobs", "pigeon.dlq.>"])
def test_reserved_subjects_are_refused(make_app: MakeApp, subject: str) -> None:
    app = make_app()
    for decorate in (app.subscribe, app.rpc):
        with pytest.raises(ConfigurationError, match="reserved"):
            decorate(subject)
    if "*" not in subject and ">" not in subject:
        with pytest.raises(ConfigurationError, match="reserved"):
            app.worker(subject)


async def test_reserved_subjects_are_refused_at_send(make_app: MakeApp) -> None:
    app = make_app()
    async with app:
        with pytest.raises(ConfigurationError, match="reserved"):
            await app.publish("_INBOX.x", 1)
        with pytest.raises(ConfigurationError, match="reserved"):
            await app.request("_PIGEON.RPC.x", 1, timeout=1)
        with pytest.raises(ConfigurationError, match="reserved"):
            await app.enqueue("pigeon.queue.x", 1)


async def test_a_subscriber_to_pigeons_prefix_gets_only_events(make_app: MakeApp, uid: str) -> None:
    app = make_app()
    subjects: list[str] = []
    jobs: list[int] = []

    @app.subscribe("pigeon.>")
    async def everything(event: bytes, msg: Message) -> None:
        if uid in msg.subject:
            subjects.append(msg.subject)

    @app.worker(f"{uid}.jobs")
    async def work(n: int) -> None:
        jobs.append(n)

    async with app:
        await app.enqueue(f"{uid}.jobs", 7)
        await app.publish(f"pigeon.{uid}.event", 1)
        await wait_for(lambda: jobs == [7] and bool(subjects), what="the job and the event")
        await asyncio.sleep(SETTLE)
    assert subjects == [f"pigeon.{uid}.event"], "only the event reached the subscriber"
