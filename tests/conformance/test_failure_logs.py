"""pigeon's own run of the conformance suite's failure-log tests, on every transport."""

from pigeon.testing.conformance.failure_logs import *  # noqa: F403
