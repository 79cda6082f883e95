"""inventory: serves ``inventory.reserve`` (request-reply) with a typed reply or a typed error.

A request that asks for more than is in stock raises ``OutOfStock``; pigeon sends it back to the
caller, who gets ``RemoteError(type="OutOfStock", message=...)``. Run several replicas and they
share the requests. The stock is loaded by the App's lifespan, before the first request is
served, and reported once the last one drained.

    PIGEON_URL=nats://127.0.0.1:4222 python -m examples.inventory
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from examples.models import SUBJECTS, OutOfStock, Reserve, Reserved, Subjects
from examples.story import say, serve
from pigeon import App

STOCK = {"kettle": 100, "teapot": 2, "gift-card": 1000}
"""What the shop has when inventory starts."""


@dataclass
class Inventory:
    """What is in stock, and the orders it was reserved for."""

    stock: dict[str, int]
    reserved: list[str] = field(default_factory=list)


def register(app: App, subjects: Subjects = SUBJECTS, stock: dict[str, int] = STOCK) -> Inventory:
    """Add inventory's handler and lifespan to ``app``; returns its state, filled on start."""
    inventory = Inventory(stock={})

    @app.lifespan
    async def load_stock(app: App) -> AsyncIterator[None]:
        inventory.stock.update(stock)  # a real service would read its database here
        app.state.inventory = inventory  # beside what other services keep there (examples.shop)
        yield
        inventory.stock.clear()  # and release it here, after the last request drained

    @app.rpc(subjects.inventory_reserve)
    async def reserve(request: Reserve) -> Reserved:
        have = inventory.stock.get(request.sku, 0)
        if have < request.quantity:
            say("inventory", f"order {request.order_id}: only {have} {request.sku} left")
            raise OutOfStock(f"only {have} {request.sku} left, {request.quantity} asked for")
        inventory.stock[request.sku] = left = have - request.quantity
        inventory.reserved.append(request.order_id)
        say("inventory", f"order {request.order_id}: reserved {request.quantity} {request.sku}")
        return Reserved(order_id=request.order_id, sku=request.sku, left=left)

    return inventory


app = App()
inventory = register(app)

if __name__ == "__main__":
    serve(app)
