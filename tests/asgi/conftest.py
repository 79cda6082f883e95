"""Fixtures of the ASGI tests: an HTTP client on an ASGI app, and the session's NATS server."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pytest
from starlette.types import ASGIApp

from tests.backends import unavailable
from tests.brokers.nats import shared_url, unavailable_reason

Client = Callable[[ASGIApp], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def client() -> Client:
    """``async with client(asgi) as http:``: an httpx client calling ``asgi`` in this process."""

    def open_client(application: ASGIApp) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=application)
        return httpx.AsyncClient(transport=transport, base_url="http://pigeon.test")

    return open_client


@pytest.fixture
def nats_url() -> str:
    """The session's NATS server (``PIGEON_TEST_NATS_URL`` or one the tests started)."""
    url = shared_url()
    if url is None:
        unavailable(unavailable_reason())
    return str(url)
