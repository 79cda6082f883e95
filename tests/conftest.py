from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from pigeon import App
from tests.backends import Backend, backend_factories

BACKEND_FACTORIES = backend_factories()


@pytest.fixture(params=sorted(BACKEND_FACTORIES))
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each conformance test runs once per transport."""
    return BACKEND_FACTORIES[request.param]()


@pytest.fixture
def uid() -> str:
    """A token unique to this test, for subjects, queues and durable names."""
    return f"t{uuid.uuid4().hex[:10]}"


MakeApp = Callable[..., App]


@pytest.fixture
async def make_app(backend: Backend) -> AsyncIterator[MakeApp]:
    """Build Apps on the backend under test; every App is closed at the end of the test."""
    apps: list[App] = []

    def make(**kwargs: Any) -> App:
        options = {**backend.options, **kwargs}
        app = App(backend.url(), **options)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.shutdown_timeout = 0
        await app.close()
