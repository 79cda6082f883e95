"""pigeon's own run of the conformance suite's tests of an App closed by its own handler, on
every transport."""

from pigeon.testing.conformance.close_in_handler import *  # noqa: F403
