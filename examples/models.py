"""What the shop's services say to each other: the message models, one error, and the subjects.

Every service imports its messages from here, so a sender and a receiver always agree on a shape.
pigeon validates each message against these pydantic models on the way in.
"""

from __future__ import annotations

from typing import NamedTuple

from pydantic import BaseModel


class Order(BaseModel):
    """A customer's order; published as the ``orders.created`` event once its stock is reserved."""

    id: str
    customer: str
    sku: str
    quantity: int


class Reserve(BaseModel):
    """The request to ``inventory.reserve``: hold ``quantity`` of ``sku`` for an order."""

    order_id: str
    sku: str
    quantity: int


class Reserved(BaseModel):
    """The reply of ``inventory.reserve``: the stock is held, ``left`` remain."""

    order_id: str
    sku: str
    left: int


class RenderInvoice(BaseModel):
    """A job on the ``invoices.render`` work queue."""

    order_id: str
    customer: str
    sku: str
    quantity: int


class OutOfStock(Exception):
    """Raised by inventory when it cannot hold the stock asked for.

    pigeon sends a handler's exception to the caller as ``RemoteError``, whose ``type`` is the
    exception's class name: the caller checks ``error.type == OutOfStock.__name__``.
    """


class Subjects(NamedTuple):
    """The names the services meet on: two subjects and one work queue.

    Handlers and senders both take their names from ``SUBJECTS``, so they always agree. (The tests
    run the shop under a prefix, to share a broker with other runs: they include the routers in a
    ``Router(prefix=...)`` and add the prefix to what the Apps send with a middleware.)
    """

    orders_created: str = "orders.created"
    inventory_reserve: str = "inventory.reserve"
    invoices_render: str = "invoices.render"


SUBJECTS = Subjects()
"""The names of the shop."""
