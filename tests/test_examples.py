"""The example shop (``examples/``) tells its story, on every transport.

The services run together in this process, each its own App including its service's router on
the backend under test, as they would in their own containers. Their subjects are prefixed with
the test's ``uid`` (``tests.prefixed``), so that a shared broker does not mix this run's messages
with another's.
"""

from __future__ import annotations

import asyncio

import pytest

from examples import billing, inventory, invoices, notifications, orders, quickstart
from examples.models import SUBJECTS, RenderInvoice
from pigeon import App, Message, Redeliver, Retry
from pigeon.testing.waiting import wait_for
from tests.conftest import MakeApp
from tests.prefixed import serve_under

RETRY = Retry(attempts=2, backoff=0.01, max_backoff=0.01)
REDELIVER = Redeliver(delays=(0.05, 0.05))


async def test_the_shop_story(make_app: MakeApp, uid: str) -> None:
    prefix = f"{uid}."
    orders_app = serve_under(prefix, make_app())
    inventory_app = serve_under(prefix, make_app(), inventory.router)
    billing_apps = [serve_under(prefix, make_app(), billing.router) for _ in range(3)]  # a group
    notifications_app = serve_under(prefix, make_app(), notifications.router)
    invoicing = invoices.make_router(retry=RETRY, redeliver=REDELIVER)
    invoices_app = serve_under(prefix, make_app(), invoicing)
    for app in (inventory_app, *billing_apps, notifications_app, invoices_app, orders_app):
        await app.start()
    stock: inventory.Inventory = inventory_app.state.inventory
    ledgers: list[billing.Ledger] = [app.state.ledger for app in billing_apps]
    outbox: notifications.Outbox = notifications_app.state.outbox
    invoiced: invoices.Invoices = invoices_app.state.invoices

    replies = [await orders.place(orders_app, order) for order in orders.first_round()]

    confirmed = [reply.order_id for reply in replies if reply is not None]
    assert confirmed == ["1001", "1003", "1004"], "1002 asks for 3 teapots, inventory has 2"
    assert stock.reserved == confirmed
    assert stock.stock == {"kettle": 97, "teapot": 2, "gift-card": 999}

    def charged() -> list[str]:
        return sorted(order for ledger in ledgers for order in ledger.charged)

    await wait_for(lambda: sorted(outbox.sent) == confirmed, what="every customer to be told")
    await wait_for(lambda: charged() == confirmed, what="billing to charge every order")
    await wait_for(lambda: sorted(invoiced.rendered) == ["1001", "1004"], what="two invoices")
    letters = await _dead_letters(invoices_app, prefix + SUBJECTS.invoices_render, count=1)

    assert [letter.decode(RenderInvoice).order_id for letter in letters] == ["1003"]
    failure = letters[0].failure
    assert failure is not None
    assert (failure.type, failure.message, failure.attempts) == (
        "TemplateMissing",
        "no invoice template for gift-card",
        invoices.total_attempts(RETRY, REDELIVER),
    )
    assert invoiced.failed == [("1003", attempt) for attempt in range(1, failure.attempts + 1)]
    assert charged() == confirmed, "the billing group charged each order once"
    assert len({id(ledger) for ledger in ledgers}) == 3, "each replica has its own ledger"


async def test_each_service_is_ready_once_started(make_app: MakeApp, uid: str) -> None:
    """What the compose demo's healthchecks ask before orders starts (``pigeon run --health-port``
    answers 200 while the App is ready and its transport connected)."""
    routers = (inventory.router, billing.router, notifications.router, invoices.router)
    apps = [serve_under(f"{uid}.", make_app(), router) for router in routers]
    for app in apps:
        assert not app.ready
        await app.start()
    assert [app.ready and app.transport.connected for app in apps] == [True] * len(apps)


def test_each_service_module_serves_its_router_on_an_app_of_its_own() -> None:
    """What ``python -m examples.<service>`` and ``pigeon run examples.<service>:app`` serve."""
    for service in (inventory, billing, notifications, invoices):
        assert [route.handler.fn for route in service.app.routes] == [
            route.handler.fn for route in service.router.routes
        ]
        assert service.app.lifespans == service.router.lifespans


def test_the_invoice_commentary_follows_the_policies() -> None:
    steps = [invoices.what_next(attempt, RETRY, REDELIVER) for attempt in range(1, 7)]
    assert steps == [
        "pigeon retries it in process",
        "the broker redelivers it in 0.05s",
        "pigeon retries it in process",
        "the broker redelivers it in 0.05s",
        "pigeon retries it in process",
        "no retries left: pigeon dead-letters it",
    ]


async def test_orders_waits_for_inventory_then_places_its_orders(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], uid: str
) -> None:
    url = f"memory://{uid}"
    monkeypatch.setattr(orders, "app", App(url))
    monkeypatch.setenv("ORDERS_EVERY", "0")
    monkeypatch.setenv("ORDERS_LIMIT", "2")
    placing = asyncio.create_task(orders.main())
    await wait_for(lambda: "no answer from inventory (NoResponders)" in capsys.readouterr().out)

    inventory_app = App(url)
    inventory_app.include(inventory.router)
    async with inventory_app:
        await asyncio.wait_for(placing, 10)
    assert inventory_app.state.inventory.reserved == ["1001"]
    assert "order 1002: refused, OutOfStock: only 2 teapot left" in capsys.readouterr().out


async def test_quickstart_prints_the_whole_story(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], uid: str
) -> None:
    monkeypatch.setenv("PIGEON_URL", f"memory://{uid}")
    await quickstart.main()
    story = capsys.readouterr().out
    for line in (
        "order 1001: confirmed (98 kettle left), event published",
        "order 1001: charged alice, invoice queued",
        "order 1001: emailed alice (event on orders.created)",
        "order 1002: refused, OutOfStock: only 2 teapot left, 3 asked for",
        "order 1003: attempt 1/6 failed, pigeon retries it in process",
        "order 1003: attempt 6/6 failed, no retries left: pigeon dead-letters it",
        "order 1003: TemplateMissing: no invoice template for gift-card (after 6 attempts)",
        "3 orders confirmed, 1 refused; 3 charged, 3 customers told; "
        "2 invoices rendered, 1 dead-lettered.",
    ):
        assert line in story


async def _dead_letters(app: App, queue: str, count: int) -> list[Message]:
    letters: list[Message] = []

    async def arrived() -> bool:
        letters[:] = await app.dead_letters(queue)
        return len(letters) >= count

    await wait_for(arrived, what=f"{count} dead letters on {queue}")
    return letters
