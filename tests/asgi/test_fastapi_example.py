"""``examples/web.py``: a FastAPI storefront whose lifespan starts a pigeon App, whose endpoints
request, publish and enqueue through it, with pigeon's ASGI app mounted under ``/pigeon``; on NATS.
"""

from __future__ import annotations

from examples import shop, web
from examples.models import SUBJECTS
from pigeon import App
from pigeon.testing.waiting import wait_for
from tests.asgi.conftest import Client
from tests.prefixed import serve_under


async def test_the_storefront_sends_through_its_pigeon_app(
    nats_url: str, uid: str, client: Client
) -> None:
    messaging = serve_under(f"{uid}.", App(nats_url), shop.router)
    api = web.create(messaging)
    kettle = {"id": "1", "customer": "ann", "sku": "kettle", "quantity": 2}
    teapots = {"id": "2", "customer": "bob", "sku": "teapot", "quantity": 3}
    invoice = {"order_id": "9", "customer": "cy", "sku": "kettle", "quantity": 1}

    async with client(api) as http:
        assert (await http.get("/pigeon/readyz")).status_code == 503, "not started yet"
        async with api.router.lifespan_context(api):
            ready = await http.get("/pigeon/readyz")
            office = messaging.state
            placed = await http.post("/orders", json=kettle)
            refused = await http.post("/orders", json=teapots)
            queued = await http.post("/invoices", json=invoice)
            await wait_for(lambda: office.ledger.charged == ["1"], what="billing to charge")
            await wait_for(lambda: office.outbox.sent == ["1"], what="the email")
            await wait_for(
                lambda: sorted(office.invoices.rendered) == ["1", "9"], what="two invoices"
            )
            document = (await http.get("/pigeon/asyncapi.json")).json()
        assert (await http.get("/pigeon/readyz")).status_code == 503, "closed with the lifespan"

    assert ready.json()["ready"] is True
    assert ready.json()["broker"]["url"] == nats_url
    assert placed.status_code == 200
    assert placed.json() == {"order_id": "1", "sku": "kettle", "left": 98}
    assert refused.status_code == 409
    assert refused.json() == {"detail": "only 2 teapot left, 3 asked for"}
    assert (queued.status_code, queued.json()) == (202, {"queued": "9"})
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert {f"{uid}.{subject}" for subject in SUBJECTS} <= addresses
