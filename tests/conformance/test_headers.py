"""pigeon's own run of the conformance suite's header tests, on every transport."""

from pigeon.testing.conformance.headers import *  # noqa: F403
