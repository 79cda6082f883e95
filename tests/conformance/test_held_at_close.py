"""pigeon's own run of the conformance suite's held-at-close tests, on every transport (see
conftest)."""

from pigeon.testing.conformance.held_at_close import *  # noqa: F403
