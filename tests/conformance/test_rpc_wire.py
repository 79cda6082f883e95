"""pigeon's own run of the conformance suite's rpc wire tests, on every transport (see conftest)."""

from pigeon.testing.conformance.rpc_wire import *  # noqa: F403
