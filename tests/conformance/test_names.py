"""pigeon's own run of the conformance suite's naming tests, on every transport (see conftest)."""

from pigeon.testing.conformance.names import *  # noqa: F403
