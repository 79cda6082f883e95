"""pigeon's own run of the conformance suite's dead-letter replay tests, on every transport."""

from pigeon.testing.conformance.replay import *  # noqa: F403
