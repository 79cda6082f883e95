"""pigeon's own run of the conformance suite's header fidelity tests, on every transport."""

from pigeon.testing.conformance.header_fidelity import *  # noqa: F403
