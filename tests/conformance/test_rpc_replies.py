"""pigeon's own run of the conformance suite's reply tests, on every transport."""

from pigeon.testing.conformance.rpc_replies import *  # noqa: F403
