"""The whole shop in one process: five services, each its own App, on the memory transport.

Run it with ``make demo`` (or ``python -m examples.quickstart``). It places four orders and prints
what every service does with each: request-reply (orders asks inventory to reserve stock),
publish-subscribe (billing and notifications both get ``orders.created``) and a work pool
(invoices renders invoices; gift cards fail on purpose, are retried, and end in the dead letters).

The services are the routers of the modules next to this one, each included in an App of its own
as in ``docker compose up``; only the retry delays are shorter here. Set ``PIGEON_URL`` to run
the same on NATS, RabbitMQ or Redis.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable

from examples import billing, inventory, invoices, notifications, orders
from examples.models import SUBJECTS, RenderInvoice
from pigeon import App, Message, Redeliver, Retry

RETRY = Retry(attempts=2, backoff=0.05)
REDELIVER = Redeliver(delays=(0.1, 0.2))

DIAGRAM = """\
  orders  --- inventory.reserve -->  inventory                request-reply
  orders  --- orders.created ----->  billing, notifications   publish-subscribe
  billing --- invoices.render ---->  invoices                 work pool: retry, dead letters
"""


async def main() -> None:
    logging.basicConfig(level=logging.CRITICAL)  # the story is printed; its failures are on purpose
    shop = App(), App(), App(), App(), App()
    orders_app, inventory_app, billing_app, notifications_app, invoices_app = shop
    inventory_app.include(inventory.router)
    billing_app.include(billing.router)
    notifications_app.include(notifications.router)
    invoices_app.include(invoices.make_router(retry=RETRY, redeliver=REDELIVER))
    given_up = invoices.total_attempts(RETRY, REDELIVER)

    async with orders_app, inventory_app, billing_app, notifications_app, invoices_app:
        # what each service did, on the state its router's lifespan opened
        billed: billing.Ledger = billing_app.state.ledger
        notified: notifications.Outbox = notifications_app.state.outbox
        invoiced: invoices.Invoices = invoices_app.state.invoices

        def settled(order_id: str) -> bool:
            invoice_done = order_id in invoiced.rendered or (order_id, given_up) in invoiced.failed
            return order_id in billed.charged and order_id in notified.sent and invoice_done

        print(f"pigeon shop on {orders_app.url}: five services, each its own App\n\n{DIAGRAM}")
        placed = 0
        for order in orders.first_round():
            print(f"order {order.id}: {order.customer} wants {order.quantity} {order.sku}")
            if await orders.place(orders_app, order):
                placed += 1
                await until(lambda order_id=order.id: settled(order_id))
            print()
        letters = await dead_letters(invoices_app, count=placed - len(invoiced.rendered))

    print(f"dead letters of {SUBJECTS.invoices_render} (`pigeon dlq show` lists them on a broker):")
    for letter in letters:
        print(f"  {describe(letter)}")
    print(
        f"\n{placed} orders confirmed, {len(orders.SCRIPT) - placed} refused; "
        f"{len(billed.charged)} charged, {len(notified.sent)} customers told; "
        f"{len(invoiced.rendered)} invoices rendered, {len(letters)} dead-lettered.\n"
        "Next: the same services, one container each, on NATS, RabbitMQ or Redis: see README.md."
    )


def describe(letter: Message) -> str:
    """One dead letter: its order, the error recorded with it, and how many attempts it had."""
    job = letter.decode(RenderInvoice)
    failure = letter.failure
    assert failure is not None, "pigeon records the failure with every dead letter"
    return (
        f"order {job.order_id}: {failure.type}: {failure.message} "
        f"(after {failure.attempts} attempts)"
    )


async def dead_letters(app: App, count: int) -> list[Message]:
    """The dead letters of the invoices queue, once there are ``count`` of them."""
    letters: list[Message] = []

    async def arrived() -> bool:
        letters[:] = await app.dead_letters(SUBJECTS.invoices_render)
        return len(letters) >= count

    await until(arrived)
    return letters


async def until(condition: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0) -> None:
    """Wait for ``condition``: the services handle each message concurrently with the demo."""
    async with asyncio.timeout(timeout):
        while True:
            holds = condition()
            if inspect.isawaitable(holds):
                holds = await holds
            if holds:
                return
            await asyncio.sleep(0.01)


if __name__ == "__main__":
    asyncio.run(main())
