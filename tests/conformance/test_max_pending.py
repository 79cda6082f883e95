"""pigeon's own run of the conformance suite's max_pending tests, on every transport (see
conftest)."""

from pigeon.testing.conformance.max_pending import *  # noqa: F403
