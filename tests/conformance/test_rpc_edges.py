"""pigeon's own run of the conformance suite's rpc edge tests, on every transport."""

from pigeon.testing.conformance.rpc_edges import *  # noqa: F403
