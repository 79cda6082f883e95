"""pigeon's own run of the conformance suite's tests of sends under way at close, on every
transport."""

from pigeon.testing.conformance.sends_at_close import *  # noqa: F403
