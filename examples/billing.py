"""billing: charges every new order once, then puts its invoice on the ``invoices.render`` queue.

Billing subscribes to ``orders.created`` (publish-subscribe) as the group ``billing``: run three
replicas and the group still charges each order once, whichever replica gets it. It then enqueues
a job for the invoices work pool, which returns once the broker stored the job. The router's
lifespan opens billing's ledger; the handler asks for it, and for the App to send with, as
dependencies (``Depends``), resolved for each order.

    PIGEON_URL=nats://127.0.0.1:4222 python -m examples.billing
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

from examples.models import SUBJECTS, Order, RenderInvoice
from examples.story import say, serve
from pigeon import App, Depends, Router


@dataclass
class Ledger:
    """The orders this replica charged."""

    charged: list[str] = field(default_factory=list)


router = Router()


@router.lifespan
async def open_ledger(app: App) -> AsyncIterator[dict[str, Ledger]]:
    """Open the ledger before the first order: a real service would connect to its database."""
    yield {"ledger": Ledger()}  # set as app.state.ledger


def ledger_of(app: App) -> Ledger:
    """The ledger of the App serving the order, as a dependency; a real service would hand out
    a database session (an async generator dependency, closed after the handler)."""
    ledger: Ledger = app.state.ledger
    return ledger


def serving(app: App) -> App:
    """The App serving the order, to send with."""
    return app


@router.subscribe(SUBJECTS.orders_created, group="billing")
async def charge(
    order: Order,
    ledger: Annotated[Ledger, Depends(ledger_of)],
    app: Annotated[App, Depends(serving)],
) -> None:
    ledger.charged.append(order.id)
    say("billing", f"order {order.id}: charged {order.customer}, invoice queued")
    job = RenderInvoice(
        order_id=order.id, customer=order.customer, sku=order.sku, quantity=order.quantity
    )
    await app.enqueue(SUBJECTS.invoices_render, job)


app = App()
app.include(router)

if __name__ == "__main__":
    serve(app)
