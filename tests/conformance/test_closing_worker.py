"""pigeon's own run of the conformance suite's closing-worker tests, on every transport."""

from pigeon.testing.conformance.closing_worker import *  # noqa: F403
