"""pigeon's own run of the conformance suite's routing tests, on every transport (see conftest)."""

from pigeon.testing.conformance.routing import *  # noqa: F403
