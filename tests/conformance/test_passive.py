"""pigeon's own run of the conformance suite's passive tests, on every transport (see conftest)."""

from pigeon.testing.conformance.passive import *  # noqa: F403
