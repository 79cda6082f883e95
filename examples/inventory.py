"""inventory: serves ``inventory.reserve`` (request-reply) with a typed reply or a typed error.

A request that asks for more than is in stock raises ``OutOfStock``; pigeon sends it back to the
caller, who gets ``RemoteError(type="OutOfStock", message=...)``. Run several replicas and they
share the requests. The router's lifespan loads the stock before the first request is served and
puts it on ``app.state``; the handler asks for it with ``Depends``, so every App that includes
the router has a stock of its own.

    PIGEON_URL=nats://127.0.0.1:4222 python -m examples.inventory
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

from examples.models import SUBJECTS, OutOfStock, Reserve, Reserved
from examples.story import say, serve
from pigeon import App, Depends, Router

STOCK = {"kettle": 100, "teapot": 2, "gift-card": 1000}
"""What the shop has when inventory starts."""


@dataclass
class Inventory:
    """What is in stock, and the orders it was reserved for."""

    stock: dict[str, int]
    reserved: list[str] = field(default_factory=list)


router = Router()


@router.lifespan
async def load_stock(app: App) -> AsyncIterator[dict[str, Inventory]]:
    """Load the stock before the first request: a real service would open its database here."""
    yield {"inventory": Inventory(stock=dict(STOCK))}  # set as app.state.inventory
    # ... and close it here, once the last request drained


def inventory_of(app: App) -> Inventory:
    """The stock of the App serving the request, as a dependency."""
    inventory: Inventory = app.state.inventory
    return inventory


@router.rpc(SUBJECTS.inventory_reserve)
async def reserve(
    request: Reserve, inventory: Annotated[Inventory, Depends(inventory_of)]
) -> Reserved:
    have = inventory.stock.get(request.sku, 0)
    if have < request.quantity:
        say("inventory", f"order {request.order_id}: only {have} {request.sku} left")
        raise OutOfStock(f"only {have} {request.sku} left, {request.quantity} asked for")
    inventory.stock[request.sku] = left = have - request.quantity
    inventory.reserved.append(request.order_id)
    say("inventory", f"order {request.order_id}: reserved {request.quantity} {request.sku}")
    return Reserved(order_id=request.order_id, sku=request.sku, left=left)


app = App()
app.include(router)

if __name__ == "__main__":
    serve(app)
