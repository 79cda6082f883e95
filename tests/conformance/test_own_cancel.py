"""pigeon's own run of the conformance suite's own-cancel tests, on every transport (see
conftest)."""

from pigeon.testing.conformance.own_cancel import *  # noqa: F403
