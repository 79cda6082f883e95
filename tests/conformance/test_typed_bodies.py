"""pigeon's own run of the conformance suite's typed-body tests, on every transport."""

from pigeon.testing.conformance.typed_bodies import *  # noqa: F403
