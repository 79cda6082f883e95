"""pigeon's own run of the conformance suite's name-isolation tests, on every transport."""

from pigeon.testing.conformance.isolation import *  # noqa: F403
