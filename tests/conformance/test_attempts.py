"""pigeon's own run of the conformance suite's attempt-counting tests, on every transport."""

from pigeon.testing.conformance.attempts import *  # noqa: F403
