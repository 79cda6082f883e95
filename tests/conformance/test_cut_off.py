"""pigeon's own run of the cut-off-line conformance tests, on every transport."""

from pigeon.testing.conformance.cut_off import *  # noqa: F403
