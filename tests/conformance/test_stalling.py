"""pigeon's own run of the stalling-server conformance test, on every transport."""

from pigeon.testing.conformance.stalling import *  # noqa: F403
