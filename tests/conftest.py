from __future__ import annotations

import pytest

from pigeon.testing.conformance import Backend, MakeApp, make_app, uid
from tests.backends import backend_factories

BACKEND_FACTORIES = backend_factories()

__all__ = ["MakeApp", "make_app", "uid"]  # the suite's fixtures, for every test here


@pytest.fixture(params=sorted(BACKEND_FACTORIES))
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each conformance test runs once per transport."""
    return BACKEND_FACTORIES[request.param]()
