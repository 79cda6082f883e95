"""The harness: Apps on a private memory broker, a virtual clock, awaitable assertions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from examples import invoices
from examples.models import RenderInvoice
from pigeon import App, ConfigurationError, Message, MessageTooLarge, Redeliver
from pigeon.testing.conformance.models import Job
from pigeon.testing.harness import Harness
from pigeon.testing.plugin import StartHarness, pigeon_harness

__all__ = ["pigeon_harness"]  # the fixture, for the tests here

GIFT = RenderInvoice(order_id="o-1", customer="ada", sku="gift-card", quantity=1)
KETTLE = RenderInvoice(order_id="o-2", customer="bob", sku="kettle", quantity=1)


async def test_a_job_delayed_an_hour_settles_at_once_in_virtual_time(
    pigeon_harness: StartHarness,
) -> None:
    app = App()
    done: list[int] = []

    @app.worker("reports.nightly")
    async def report(job: Job) -> None:
        done.append(job.n)

    h = await pigeon_harness(app)
    start = asyncio.get_running_loop().time()
    await app.enqueue("reports.nightly", Job(1), delay=3600)
    await app.enqueue("reports.nightly", Job(2), at=datetime.now(UTC) + timedelta(minutes=30))
    await h.settled("reports.nightly")
    assert done == [2, 1]
    [first, second] = h.handled(report)
    assert (first.body, first.outcome) == (Job(2), "acked")
    assert second.at - start >= 3600 - 0.001, "the loop's clock passed the hour"
    assert [s.delay for s in h.enqueued("reports.nightly")] == [3600, pytest.approx(1800, abs=1)]


async def test_the_shop_invoices_retry_redeliver_dead_letter_and_replay(
    pigeon_harness: StartHarness,
) -> None:
    app = App()
    app.include(invoices.router)  # the shop's own delays: Retry(2), Redeliver((1, 5))
    h = await pigeon_harness(app)
    state = app.state.invoices
    await app.enqueue("invoices.render", GIFT)
    await app.enqueue("invoices.render", KETTLE)
    await h.settled("invoices.render")

    render = app.handlers[0].handler.fn
    outcomes = [(r.body.order_id, r.attempt, r.outcome) for r in h.handled(render)]
    assert outcomes == [
        ("o-2", 1, "acked"),
        ("o-1", 1, "redelivered"),
        ("o-1", 2, "redelivered"),
        ("o-1", 3, "dead_lettered"),
    ]
    assert [attempt for _, attempt in state.failed] == [1, 2, 3, 4, 5, 6]
    [letter] = await h.dead_letters("invoices.render")
    assert letter.failure is not None
    assert (letter.failure.type, letter.failure.attempts) == ("TemplateMissing", 6)

    invoices.NO_TEMPLATE.discard("gift-card")  # the template is fixed: replay the dead letter
    try:
        assert await app.replay_dead_letters("invoices.render") == 1
        await h.settled("invoices.render")
    finally:
        invoices.NO_TEMPLATE.add("gift-card")
    assert state.rendered == ["o-2", "o-1"]
    assert await h.dead_letters("invoices.render") == []


async def test_long_redelivery_delays_take_no_real_time(pigeon_harness: StartHarness) -> None:
    app = App()
    attempts: list[int] = []

    @app.worker("sync.crm", redeliver=Redeliver(delays=(60, 600)))
    async def sync(job: Job, msg: Message) -> None:
        attempts.append(msg.attempt)
        raise ConnectionError("the CRM is down")

    h = await pigeon_harness(app)
    await app.enqueue("sync.crm", Job(1))
    await h.settled("sync.crm")
    records = h.handled(sync)
    assert [r.outcome for r in records] == ["redelivered", "redelivered", "dead_lettered"]
    assert records[2].at - records[0].at >= 660 - 0.001
    assert attempts == [1, 2, 3]


async def test_published_events_are_recorded_decoded_across_apps(
    pigeon_harness: StartHarness,
) -> None:
    sender, receiver = App(), App()
    got: list[Job] = []

    @receiver.subscribe("jobs.announced")
    async def hear(job: Job) -> None:
        got.append(job)

    h = await pigeon_harness(sender, receiver)
    await sender.publish("jobs.announced", Job(5))
    [record] = await h.wait_handled(hear)
    assert record.body == Job(5)
    assert got == [Job(5)]
    assert [p.body for p in h.published("jobs.announced")] == [{"n": 5}]


async def test_a_wait_that_cannot_end_fails_at_once_saying_what_is_left() -> None:
    producer = App()
    async with Harness(producer) as h:
        await producer.enqueue("nobody.works", Job(1))
        with pytest.raises(AssertionError, match=r"1 ready \(no worker consumes it\)"):
            await h.settled("nobody.works", timeout=3600)


async def test_the_real_clock_works_too() -> None:
    app = App()

    @app.worker("quick")
    async def quick(job: Job) -> None:
        pass

    async with Harness(app, clock="real") as h:
        await app.enqueue("quick", Job(1), delay=0.05)
        [record] = await h.wait_handled(quick)
    assert record.outcome == "acked"


async def test_asking_for_a_function_that_is_not_a_handler_fails_at_once() -> None:
    app = App()

    @app.worker("quick")
    async def quick(job: Job) -> None:
        pass

    async def typo(job: Job) -> None:
        pass

    async with Harness(app) as h:
        with pytest.raises(ValueError, match="typo is not a handler"):
            h.handled(typo)
        with pytest.raises(ValueError, match="typo is not a handler"):
            await h.wait_handled(typo)
        assert h.handled(quick) == []


async def test_the_harness_refuses_a_body_over_the_brokers_limit(
    pigeon_harness: StartHarness,
) -> None:
    """Given production's limit (NATS: 1 MiB), a test that sends more fails as production would,
    and the App goes on."""
    app = App("nats://127.0.0.1:4222")  # the harness never uses the App's own URL
    done: list[int] = []

    @app.worker("reports.nightly")
    async def report(job: dict[str, str]) -> None:
        done.append(len(job["blob"]))

    h = await pigeon_harness(app, max_message_size=1024 * 1024)
    with pytest.raises(MessageTooLarge, match="over max_message_size=1,048,576"):
        await app.enqueue("reports.nightly", {"blob": "x" * 1024 * 1024})
    await app.enqueue("reports.nightly", {"blob": "x" * 1000})
    await h.settled("reports.nightly")
    assert done == [1000]


async def test_the_harness_keeps_a_memory_apps_limit_and_refuses_a_bad_one(
    pigeon_harness: StartHarness,
) -> None:
    with pytest.raises(ConfigurationError, match="max_message_size=0: give a whole number"):
        Harness(App(), max_message_size=0)  # at once, before it swaps or starts anything
    app = App("memory://", max_message_size=1024)
    await pigeon_harness(app)
    with pytest.raises(MessageTooLarge, match="over max_message_size=1,024"):
        await app.publish("reports.ready", {"blob": "x" * 2000})


async def test_a_long_wait_that_fails_says_its_seconds_as_written() -> None:
    async with Harness(App()) as h:
        with pytest.raises(AssertionError, match=r"waited 2592000s \(loop time\)"):
            await h.wait(lambda: False, timeout=30 * 86_400, what="a month")
