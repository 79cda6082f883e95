"""billing: charges every new order once, then puts its invoice on the ``invoices.render`` queue.

Billing subscribes to ``orders.created`` (publish-subscribe) as the group ``billing``: run three
replicas and the group still charges each order once, whichever replica gets it. It then enqueues
a job for the invoices work pool, which returns once the broker stored the job. The handler asks
for billing's ledger as a dependency (``Depends``), resolved for each order.

    PIGEON_URL=nats://127.0.0.1:4222 python -m examples.billing
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from examples.models import SUBJECTS, Order, RenderInvoice, Subjects
from examples.story import say, serve
from pigeon import App, Depends


@dataclass
class Billing:
    """The orders this replica charged."""

    charged: list[str] = field(default_factory=list)


def ledger(app: App) -> Billing:
    """Billing's ledger, as a dependency; a real service would hand out a database session."""
    ledger: Billing = app.state.billing
    return ledger


def register(app: App, subjects: Subjects = SUBJECTS) -> Billing:
    """Add billing's handler to ``app``; returns its state."""
    billing = app.state.billing = Billing()

    @app.subscribe(subjects.orders_created, group="billing")
    async def charge(order: Order, book: Annotated[Billing, Depends(ledger)]) -> None:
        book.charged.append(order.id)
        say("billing", f"order {order.id}: charged {order.customer}, invoice queued")
        job = RenderInvoice(
            order_id=order.id, customer=order.customer, sku=order.sku, quantity=order.quantity
        )
        await app.enqueue(subjects.invoices_render, job)

    return billing


app = App()
billing = register(app)

if __name__ == "__main__":
    serve(app)
