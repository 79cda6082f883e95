"""The shop's back office as one App: inventory, billing, notifications and invoices together.

Each service is a router in its own module, served there by an App of its own
(``python -m examples.inventory``, ...); this module includes the four routers in one, and serves
that, for what wants to see or serve the whole back office at once:

    pigeon docs serve examples.shop:app          # the AsyncAPI page: http://127.0.0.1:8000/asyncapi
    pigeon run examples.shop:app --http-port 8080   # serve all four, with /readyz and /metrics

The App enters the routers' lifespans in that order, so ``app.state`` holds ``inventory``,
``ledger``, ``outbox`` and ``invoices`` once it started. ``examples/web.py`` puts the same routers
behind a FastAPI storefront.
"""

from __future__ import annotations

from examples import billing, inventory, invoices, notifications
from pigeon import App, Router

router = Router()
router.include(inventory.router)
router.include(billing.router)
router.include(notifications.router)
router.include(invoices.router)

app = App()
app.include(router)
