"""pigeon's own run of the conformance suite's closing-server tests, on every transport."""

from pigeon.testing.conformance.rpc_closing import *  # noqa: F403
