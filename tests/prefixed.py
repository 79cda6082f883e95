"""The example shop under a prefix, so that test runs sharing a broker never see each other's
messages: the routers are included in a ``Router(prefix=...)`` (what the Apps receive) and the
Apps add the prefix to what they send with a middleware (``PrefixSends``)."""

from __future__ import annotations

import dataclasses
from typing import Any

from pigeon import App, Message, Router
from pigeon.middleware import CallNext


class PrefixSends:
    """Middleware: publish, request and enqueue on ``prefix`` + the subject or queue given."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    async def send(self, message: Message, call_next: CallNext) -> Any:
        return await call_next(dataclasses.replace(message, subject=self.prefix + message.subject))


def serve_under(prefix: str, app: App, *routers: Router) -> App:
    """``app`` serving ``routers`` under ``prefix``, and sending under it too; returns ``app``."""
    under = Router(prefix=prefix)
    for router in routers:
        under.include(router)
    app.include(under)
    app.use(PrefixSends(prefix))
    return app
