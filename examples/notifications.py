"""notifications: tells the customer about every new order.

Notifications subscribes to ``orders.created`` (publish-subscribe) without a group, so it gets
every event, whatever billing does with the same events. Every replica gets every event too: run
one (or give it a group, as billing does).

    PIGEON_URL=nats://127.0.0.1:4222 python -m examples.notifications
"""

from __future__ import annotations

from dataclasses import dataclass, field

from examples.models import SUBJECTS, Order, Subjects
from examples.story import say, serve
from pigeon import App, Message


@dataclass
class Notifications:
    """The orders whose customer was told."""

    sent: list[str] = field(default_factory=list)


def register(app: App, subjects: Subjects = SUBJECTS) -> Notifications:
    """Add notifications' handler to ``app``; returns its state."""
    notifications = Notifications()

    @app.subscribe(subjects.orders_created)
    async def notify(order: Order, msg: Message) -> None:
        notifications.sent.append(order.id)
        say("notifications", f"order {order.id}: emailed {order.customer} (event on {msg.subject})")

    return notifications


app = App()
notifications = register(app)

if __name__ == "__main__":
    serve(app)
