"""notifications: tells the customer about every new order.

Notifications subscribes to ``orders.created`` (publish-subscribe) without a group, so it gets
every event, whatever billing does with the same events. Every replica gets every event too: run
one (or give it a group, as billing does).

    PIGEON_URL=nats://127.0.0.1:4222 python -m examples.notifications
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

from examples.models import SUBJECTS, Order
from examples.story import say, serve
from pigeon import App, Depends, Message, Router


@dataclass
class Outbox:
    """The orders whose customer was told."""

    sent: list[str] = field(default_factory=list)


router = Router()


@router.lifespan
async def open_outbox(app: App) -> AsyncIterator[dict[str, Outbox]]:
    """Open the outbox before the first event: a real service would connect to its mailer."""
    yield {"outbox": Outbox()}  # set as app.state.outbox


def outbox_of(app: App) -> Outbox:
    """The outbox of the App serving the event, as a dependency."""
    outbox: Outbox = app.state.outbox
    return outbox


@router.subscribe(SUBJECTS.orders_created)
async def notify(order: Order, msg: Message, outbox: Annotated[Outbox, Depends(outbox_of)]) -> None:
    outbox.sent.append(order.id)
    say("notifications", f"order {order.id}: emailed {order.customer} (event on {msg.subject})")


app = App()
app.include(router)

if __name__ == "__main__":
    serve(app)
