"""pigeon's own run of the hostile-input conformance tests, on every transport."""

from pigeon.testing.conformance.hostile import *  # noqa: F403
