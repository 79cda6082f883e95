"""orders: drives the story. It places orders: reserves their stock, then announces them.

For each order, orders asks inventory to reserve the stock (request-reply, ``inventory.reserve``).
An ``OutOfStock`` error comes back as ``RemoteError`` and the order is refused; otherwise orders
publishes ``orders.created`` (publish-subscribe), which billing and notifications both receive.

Run on its own, it places an order every ``ORDERS_EVERY`` seconds (default 2) until stopped, or
``ORDERS_LIMIT`` orders if that is set. It serves no handler, so it has no router: it sends
through its App.

    PIGEON_URL=nats://127.0.0.1:4222 ORDERS_LIMIT=4 python -m examples.orders
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections.abc import Iterator

from examples.models import SUBJECTS, Order, OutOfStock, Reserve, Reserved
from examples.story import say
from pigeon import App, NoResponders, RemoteError, RequestTimeout

SCRIPT = [
    ("alice", "kettle", 2),
    ("bob", "teapot", 3),  # more than inventory has: refused
    ("carol", "gift-card", 1),  # has no invoice template: its invoice is dead-lettered
    ("dave", "kettle", 1),
]
"""Who orders what, over and over: (customer, sku, quantity)."""


def script(first_id: int = 1001) -> Iterator[Order]:
    """The orders of ``SCRIPT``, round after round, numbered from ``first_id``."""
    for number, (customer, sku, quantity) in enumerate(itertools.cycle(SCRIPT), first_id):
        yield Order(id=str(number), customer=customer, sku=sku, quantity=quantity)


def first_round() -> list[Order]:
    """One order of each line of ``SCRIPT``."""
    return list(itertools.islice(script(), len(SCRIPT)))


async def place(app: App, order: Order) -> Reserved | None:
    """Reserve the order's stock, then publish ``orders.created``; ``None`` if out of stock.

    Raises ``NoResponders`` at once if no inventory is running.
    """
    request = Reserve(order_id=order.id, sku=order.sku, quantity=order.quantity)
    try:
        reserved: Reserved = await app.request(
            SUBJECTS.inventory_reserve, request, reply=Reserved, timeout=2.0
        )
    except RemoteError as error:  # inventory raised: pigeon sends its class name and message
        if error.type != OutOfStock.__name__:
            raise  # anything but OutOfStock is a bug, not a refusal
        say("orders", f"order {order.id}: refused, {error.type}: {error.message}")
        return None
    await app.publish(SUBJECTS.orders_created, order)
    say(
        "orders", f"order {order.id}: confirmed ({reserved.left} {order.sku} left), event published"
    )
    return reserved


async def main() -> None:
    """Place the scripted orders, one every ``ORDERS_EVERY`` seconds, waiting for inventory."""
    every = float(os.environ.get("ORDERS_EVERY", "2"))
    limit = int(os.environ.get("ORDERS_LIMIT", "0")) or None
    async with app:
        for order in itertools.islice(script(), limit):
            say("orders", f"order {order.id}: {order.customer} wants {order.quantity} {order.sku}")
            await place_once_inventory_answers(order)
            await asyncio.sleep(every)


async def place_once_inventory_answers(order: Order) -> None:
    """Place ``order``, trying again every second while no inventory answers: the services of the
    compose demo start together, and inventory may not be serving yet."""
    while True:
        try:
            await place(app, order)
            return
        except (NoResponders, RequestTimeout) as error:
            say("orders", f"order {order.id}: no answer from inventory ({type(error).__name__})")
            await asyncio.sleep(1)


app = App()

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(main())
