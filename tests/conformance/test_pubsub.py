"""pigeon's own run of the conformance suite's pubsub tests, on every transport (see conftest)."""

from pigeon.testing.conformance.pubsub import *  # noqa: F403
