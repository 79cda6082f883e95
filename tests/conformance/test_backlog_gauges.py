"""pigeon's own run of the backlog-gauge conformance tests, on every transport."""

from pigeon.testing.conformance.backlog_gauges import *  # noqa: F403
