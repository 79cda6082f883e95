"""pigeon's own run of the conformance suite's middleware tests, on every transport."""

from pigeon.testing.conformance.middleware import *  # noqa: F403
