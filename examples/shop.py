"""The shop's back office as one App: inventory, billing, notifications and invoices together.

Each service also runs on its own (``python -m examples.inventory``, ...); this module puts their
handlers on one App, for what wants to see or serve the whole shop at once:

    pigeon docs serve examples.shop:app          # the AsyncAPI page: http://127.0.0.1:8000/asyncapi
    pigeon run examples.shop:app --http-port 8080   # serve all four, with /readyz and /metrics

``examples/web.py`` puts the same App behind a FastAPI storefront.
"""

from __future__ import annotations

from dataclasses import dataclass

from examples import billing, inventory, invoices, notifications
from examples.models import SUBJECTS, Subjects
from pigeon import App, Redeliver, Retry


@dataclass
class BackOffice:
    """The state of each service of the back office."""

    inventory: inventory.Inventory
    billing: billing.Billing
    notifications: notifications.Notifications
    invoices: invoices.Invoices


def register(
    app: App,
    subjects: Subjects = SUBJECTS,
    retry: Retry = invoices.RETRY,
    redeliver: Redeliver = invoices.REDELIVER,
) -> BackOffice:
    """Add the handlers of inventory, billing, notifications and invoices to ``app``."""
    return BackOffice(
        inventory=inventory.register(app, subjects),
        billing=billing.register(app, subjects),
        notifications=notifications.register(app, subjects),
        invoices=invoices.register(app, subjects, retry=retry, redeliver=redeliver),
    )


app = App()
back_office = register(app)
