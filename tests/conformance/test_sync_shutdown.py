"""pigeon's own run of the conformance suite's sync-handler shutdown tests, on every transport."""

from pigeon.testing.conformance.sync_shutdown import *  # noqa: F403
