"""storefront: a FastAPI web service that owns a pigeon App and sends through it.

The FastAPI lifespan starts the pigeon App (connects, subscribes its handlers) before the first
HTTP request and closes it (drains its handlers) after the last. The endpoints use the three
patterns:

- ``POST /orders``: asks ``inventory.reserve`` for the stock (request-reply), answers 409 when it
  is out of stock, else publishes ``orders.created`` (publish-subscribe) and returns the
  reservation;
- ``POST /invoices``: stores an ``invoices.render`` job (work pool) and answers 202.

pigeon's own ASGI app is mounted under ``/pigeon``: ``/pigeon/healthz``, ``/pigeon/readyz``,
``/pigeon/metrics`` and the AsyncAPI page ``/pigeon/asyncapi``. Here the App also includes the
back office's routers (``examples/shop.py``), so the example runs alone on ``memory://``; on a
broker, the back office may run in other processes instead (``pigeon run examples.shop:app``).

    pip install 'pigeon[http]' fastapi
    PIGEON_URL=nats://127.0.0.1:4222 uvicorn examples.web:api --port 8000
    curl -X POST localhost:8000/orders -H 'content-type: application/json' \\
         -d '{"id": "1", "customer": "ann", "sku": "kettle", "quantity": 1}'
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException

from examples import shop
from examples.models import SUBJECTS, Order, OutOfStock, RenderInvoice, Reserve, Reserved
from pigeon import App, NoResponders, RemoteError


def create(messaging: App) -> FastAPI:
    """The storefront's FastAPI app, sending through ``messaging``."""

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        async with messaging:  # connected and subscribed before the first request
            yield

    api = FastAPI(title="pigeon shop storefront", lifespan=lifespan)

    @api.post("/orders")
    async def place_order(order: Order) -> Reserved:
        """Reserve the order's stock, then announce the order; 409 when out of stock."""
        request = Reserve(order_id=order.id, sku=order.sku, quantity=order.quantity)
        try:
            reserved: Reserved = await messaging.request(
                SUBJECTS.inventory_reserve, request, reply=Reserved, timeout=2.0
            )
        except RemoteError as error:
            if error.type != OutOfStock.__name__:
                raise
            raise HTTPException(409, error.message) from error
        except NoResponders as error:
            raise HTTPException(503, "inventory is not running") from error
        await messaging.publish(SUBJECTS.orders_created, order)
        return reserved

    @api.post("/invoices", status_code=202)
    async def render_invoice(job: RenderInvoice) -> dict[str, str]:
        """Queue an invoice to be rendered (again)."""
        await messaging.enqueue(SUBJECTS.invoices_render, job)
        return {"queued": job.order_id}

    api.mount("/pigeon", messaging.asgi(title="pigeon shop"))
    return api


messaging = App()
messaging.include(shop.router)
api = create(messaging)
