"""pigeon's own run of the conformance suite's odd-error tests, on every transport."""

from pigeon.testing.conformance.odd_errors import *  # noqa: F403
