"""pigeon's own run of the conformance suite's workpool tests, on every transport (see conftest)."""

from pigeon.testing.conformance.workpool import *  # noqa: F403
