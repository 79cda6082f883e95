"""pigeon's own run of the conformance suite's Deduplicate tests, on every transport."""

from pigeon.testing.conformance.deduplicate import *  # noqa: F403
