"""pigeon's run of the large-header conformance tests, on every transport."""

from pigeon.testing.conformance.large_headers import *  # noqa: F403
