"""pigeon's own run of the conformance suite's delayed-job tests, on every transport."""

from pigeon.testing.conformance.delays import *  # noqa: F403
