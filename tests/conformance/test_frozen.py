"""pigeon's own run of the silent-broker conformance tests, on every transport."""

from pigeon.testing.conformance.frozen import *  # noqa: F403
