"""pigeon's own run of the conformance suite's bounds tests, on every transport."""

from pigeon.testing.conformance.bounds import *  # noqa: F403
