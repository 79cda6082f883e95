"""pigeon's own run of the conformance suite's tests of queues used as they exist."""

from pigeon.testing.conformance.existing_queues import *  # noqa: F403
