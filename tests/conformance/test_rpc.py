"""pigeon's own run of the conformance suite's rpc tests, on every transport (see conftest)."""

from pigeon.testing.conformance.rpc import *  # noqa: F403
