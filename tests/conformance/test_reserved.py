"""pigeon's own run of the conformance suite's reserved-name tests, on every transport."""

from pigeon.testing.conformance.reserved import *  # noqa: F403
